# A JVM: `java -version`, then the class Jvm.java (compiled natively by the test
# into $1/classes) with its threads, NIO sockets, WatchService and mapped file.
set -e
java -version 2>&1 | head -1
java -cp "$1/classes" Jvm
