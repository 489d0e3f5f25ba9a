// A JVM: a thread pool, threads contending on a monitor and an atomic, a blocking
// queue, CompletableFuture, a scheduled executor, the garbage collector over a large
// list, a child process; NIO sockets over TCP and a unix socket, a WatchService
// (inotify), a memory-mapped file with a file lock. Every line is deterministic.
import java.net.*;
import java.nio.*;
import java.nio.channels.*;
import java.nio.file.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

public class Jvm {
    public static void main(String[] args) throws Exception {
        threads();
        io();
    }

    static void threads() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<Long>> fs = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
            final int base = t;
            fs.add(pool.submit(() -> {
                long s = 0;
                for (int i = 0; i < 100000; i++) s += (long) i * base;
                return s;
            }));
        }
        long total = 0;
        for (Future<Long> f : fs) total += f.get();
        pool.shutdown();
        System.out.println("pool " + total + " " + pool.awaitTermination(10, TimeUnit.SECONDS));
        AtomicInteger counter = new AtomicInteger();
        Object lock = new Object();
        int[] plain = {0};
        Thread[] ts = new Thread[6];
        for (int i = 0; i < ts.length; i++) {
            ts[i] = new Thread(() -> {
                for (int j = 0; j < 10000; j++) {
                    counter.incrementAndGet();
                    synchronized (lock) { plain[0]++; }
                }
            });
            ts[i].start();
        }
        for (Thread t : ts) t.join();
        System.out.println("threads " + counter.get() + " " + plain[0]);
        BlockingQueue<String> q = new ArrayBlockingQueue<>(2);
        Thread prod = new Thread(() -> {
            try { for (int i = 0; i < 5; i++) q.put("m" + i); q.put("end"); } catch (InterruptedException e) {}
        });
        prod.start();
        StringBuilder sb = new StringBuilder();
        for (String m; !(m = q.take()).equals("end");) sb.append(m).append(' ');
        System.out.println("queue " + sb.toString().trim());
        CompletableFuture<String> cf = CompletableFuture.supplyAsync(() -> "async").thenApply(String::toUpperCase);
        System.out.println("completable " + cf.get(10, TimeUnit.SECONDS));
        ScheduledExecutorService sch = Executors.newScheduledThreadPool(1);
        CountDownLatch latch = new CountDownLatch(3);
        sch.scheduleAtFixedRate(latch::countDown, 0, 10, TimeUnit.MILLISECONDS);
        System.out.println("scheduled " + latch.await(10, TimeUnit.SECONDS));
        sch.shutdownNow();
        Path d = Files.createTempDirectory("jt");
        Path f = d.resolve("a.txt");
        Files.writeString(f, "hello java\n");
        System.out.println("file " + Files.readString(f).trim() + " " + Files.size(f));
        Files.delete(f); Files.delete(d);
        Process p = new ProcessBuilder("sh", "-c", "echo child; exit 4").start();
        String out = new String(p.getInputStream().readAllBytes()).trim();
        System.out.println("process " + out + " " + p.waitFor());
        List<Integer> big = new ArrayList<>();
        for (int i = 0; i < 2_000_000; i++) big.add(i);
        System.gc();
        System.out.println("gc " + big.stream().mapToLong(Integer::longValue).sum());
    }

    static void io() throws Exception {
        try (ServerSocketChannel ss = ServerSocketChannel.open()) {
            ss.bind(new InetSocketAddress("127.0.0.1", 0));
            ExecutorService ex = Executors.newCachedThreadPool();
            Future<String> srv = ex.submit(() -> {
                try (SocketChannel c = ss.accept()) {
                    ByteBuffer b = ByteBuffer.allocate(64); c.read(b); b.flip();
                    String s = new String(b.array(), 0, b.limit()); c.write(ByteBuffer.wrap(s.toUpperCase().getBytes()));
                    return s;
                }
            });
            try (SocketChannel c = SocketChannel.open(ss.getLocalAddress())) {
                c.write(ByteBuffer.wrap("nio hello".getBytes()));
                ByteBuffer b = ByteBuffer.allocate(64); c.read(b);
                System.out.println("nio " + srv.get() + " -> " + new String(b.array(), 0, b.position()));
            }
            ex.shutdown();
        }
        Path d = Files.createTempDirectory("w");
        try (WatchService ws = FileSystems.getDefault().newWatchService()) {
            d.register(ws, StandardWatchEventKinds.ENTRY_CREATE, StandardWatchEventKinds.ENTRY_DELETE);
            Files.writeString(d.resolve("f"), "x");
            WatchKey k = ws.poll(10, TimeUnit.SECONDS);
            List<String> evs = new ArrayList<>();
            if (k != null) for (WatchEvent<?> e : k.pollEvents()) evs.add(e.kind() + " " + e.context());
            System.out.println("watch " + evs);
        }
        Files.delete(d.resolve("f")); Files.delete(d);
        Path u = Path.of(System.getProperty("java.io.tmpdir"), "j" + ProcessHandle.current().pid() + ".sock");
        try (ServerSocketChannel us = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            us.bind(UnixDomainSocketAddress.of(u));
            try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(u)); SocketChannel s = us.accept()) {
                c.write(ByteBuffer.wrap("unix".getBytes()));
                ByteBuffer b = ByteBuffer.allocate(16); s.read(b);
                System.out.println("unix " + new String(b.array(), 0, b.position()));
            }
        } finally { Files.deleteIfExists(u); }
        try (FileChannel fc = FileChannel.open(Files.createTempFile("m", ".bin"), StandardOpenOption.READ, StandardOpenOption.WRITE, StandardOpenOption.DELETE_ON_CLOSE)) {
            MappedByteBuffer mb = fc.map(FileChannel.MapMode.READ_WRITE, 0, 1 << 20);
            for (int i = 0; i < 1 << 20; i += 4096) mb.put(i, (byte) 1);
            mb.force();
            try (FileLock l = fc.lock()) { System.out.println("mapped " + fc.size() + " locked " + l.isValid()); }
        }
        System.out.println("procs " + (Runtime.getRuntime().availableProcessors() > 0));
    }
}
