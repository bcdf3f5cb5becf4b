rootProject.name = "laion-spark"
