// ESLint's recommended rules over the JavaScript the report pages inline (laion_spark/report/*.js).
// Each file is a classic browser <script>, not a module: browser globals, no imports.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["**/.venv/", "**/node_modules/", "build/", "dist/", "demo-out/", "bench-out/"] },
  js.configs.recommended,
  {
    files: ["laion_spark/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "script", globals: globals.browser },
  },
  {
    files: ["eslint.config.mjs"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
