// JVM side of laion-spark, for classic Spark clusters (Sail and Databricks need none of it):
//   gradle sparkJars   -> build/jars/: Delta Lake (+ delta-storage) for spark-submit --jars
//   gradle rapidsJar   -> build/jars/: the RAPIDS Accelerator, for conf/rapids.conf
//   gradle pyFiles     -> build/dist/laion_spark.zip for spark-submit --py-files
//   gradle submitArgs  -> prints the --jars / --py-files arguments for spark-submit
//
// The Delta coordinate is pinned once, in laion_spark/session.py (DELTA_MAVEN_COORDINATE);
// this build reads it from there so the Python engine factory and the cluster jars never drift.

plugins {
    base
}

repositories {
    mavenCentral()
}

val deltaCoordinate: String =
    Regex("""DELTA_MAVEN_COORDINATE = "([^"]+)"""")
        .find(file("laion_spark/session.py").readText())
        ?.groupValues
        ?.get(1)
        ?: throw GradleException("DELTA_MAVEN_COORDINATE not found in laion_spark/session.py")
val deltaVersion: String = deltaCoordinate.substringAfterLast(':')
val rapidsVersion: String = providers.gradleProperty("rapidsVersion").getOrElse("25.10.0")

// Spark itself (and Scala) come from the cluster: fetch only what it lacks.
val sparkJarsClasspath: Configuration by configurations.creating { isTransitive = false }
val rapidsClasspath: Configuration by configurations.creating { isTransitive = false }

dependencies {
    sparkJarsClasspath(deltaCoordinate)
    sparkJarsClasspath("io.delta:delta-storage:$deltaVersion")
    rapidsClasspath("com.nvidia:rapids-4-spark_2.13:$rapidsVersion")
}

val jarsDir = layout.buildDirectory.dir("jars")

tasks.register<Copy>("sparkJars") {
    group = "laion-spark"
    description = "Copies the Delta Lake jars ($deltaCoordinate) to build/jars."
    from(sparkJarsClasspath)
    into(jarsDir)
}

tasks.register<Copy>("rapidsJar") {
    group = "laion-spark"
    description = "Copies the RAPIDS Accelerator jar ($rapidsVersion) to build/jars."
    from(rapidsClasspath)
    into(jarsDir)
}

val pyFiles =
    tasks.register<Zip>("pyFiles") {
        group = "laion-spark"
        description = "Zips the laion_spark package for spark-submit --py-files."
        archiveFileName.set("laion_spark.zip")
        destinationDirectory.set(layout.buildDirectory.dir("dist"))
        from(".") {
            include("laion_spark/**/*.py")
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
