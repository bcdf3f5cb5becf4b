// JVM side of laion-spark, for classic Spark clusters (Sail and Databricks need none of it):
//   gradle sparkJars   -> build/jars/: Delta Lake (delta-spark + delta-storage) and hadoop-aws,
//                         for spark-submit --jars or `laion-spark ... --engine local --delta-jars build/jars`
//   gradle rapidsJar   -> build/jars/: the RAPIDS Accelerator (CUDA classifier), for conf/rapids.conf
//   gradle pyFiles     -> build/dist/laion_spark.zip for spark-submit --py-files (package + conf/)
//   gradle submitArgs  -> prints the --jars / --py-files arguments for spark-submit
//
// Every version is pinned once, in laion_spark/engine/jars.properties, which the Python engine
// factory reads too (tests/engine/test_jars.py checks that this build and Python agree).

import java.util.Properties

plugins {
    base
}

repositories {
    mavenCentral()
}

val pinned =
    Properties().apply {
        file("laion_spark/engine/jars.properties").inputStream().use { load(it) }
    }

fun coordinate(key: String): String = pinned.getProperty(key) ?: throw GradleException("$key missing in jars.properties")

// Spark itself (and Scala) come from the cluster: fetch only what it lacks.
val sparkJarsClasspath: Configuration by configurations.creating { isTransitive = false }
val rapidsClasspath: Configuration by configurations.creating { isTransitive = false }

dependencies {
    sparkJarsClasspath(coordinate("delta.spark"))
    sparkJarsClasspath(coordinate("delta.storage"))
    sparkJarsClasspath(coordinate("hadoop.aws"))
    rapidsClasspath("${coordinate("rapids")}:${coordinate("rapids.classifier")}")
}

val jarsDir = layout.buildDirectory.dir("jars")

tasks.register<Copy>("sparkJars") {
    group = "laion-spark"
    description = "Copies the Delta Lake and hadoop-aws jars pinned in jars.properties to build/jars."
    from(sparkJarsClasspath)
    into(jarsDir)
}

tasks.register<Copy>("rapidsJar") {
    group = "laion-spark"
    description = "Copies the RAPIDS Accelerator jar pinned in jars.properties to build/jars."
    from(rapidsClasspath)
    into(jarsDir)
}

val pyFiles =
    tasks.register<Zip>("pyFiles") {
        group = "laion-spark"
        description = "Zips the laion_spark package and conf/ (as laion_spark/conf) for spark-submit --py-files."
        archiveFileName.set("laion_spark.zip")
        destinationDirectory.set(layout.buildDirectory.dir("dist"))
        from(".") {
            include("laion_spark/**/*.py", "laion_spark/**/*.properties")
        }
        from("conf") {
            into("laion_spark/conf")
        }
    }

tasks.register("submitArgs") {
    group = "laion-spark"
    description = "Prints the spark-submit arguments that ship the jars and the package."
    dependsOn("sparkJars", pyFiles)
    doLast {
        val jars = jarsDir.get().asFile.listFiles { f -> f.extension == "jar" }.orEmpty().sorted()
        println("--jars ${jars.joinToString(",")} --py-files ${pyFiles.get().archiveFile.get().asFile}")
    }
}

tasks.named("assemble") {
    dependsOn("sparkJars", pyFiles)
}
