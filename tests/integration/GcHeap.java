// SPDX-License-Identifier: MIT
//
// A Java program that never heard of thpswap, for the run-jvm test: run
// as a single source file (java GcHeap.java SEED MIB THREADS).
//
// THREADS threads build an object graph of about MIB MiB in the heap, each
// its own part: nodes with an array of longs (counters), an array of bytes
// (text: a real heap's contents compress, random bytes would be kept
// resident as incompressible) and a link to an earlier node of the same
// part, every value a function of (SEED, part, node, index).  It prints "ready CHECKSUM HEAPMIB", then reads
// commands from stdin, one a line:
//   walk    every part walked by its thread, every byte checked against the
//           seed: "ok CHECKSUM" or "bad PART NODE WHAT"
//   churn   each thread replaces a quarter of its nodes with new objects of
//           the same contents, relinks its part and makes garbage; then
//           System.gc() (a full, compacting collection) moves what is left;
//           then a walk as above
//   exit    exits with status 0
// The checksum depends only on the contents, so it is the same after every
// churn; a wrong byte prints "bad" at once.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class GcHeap {
    static final class Node {
        final int id;
        Node link;
        final long[] words;
        final byte[] bytes;

        Node(int id, long[] words, byte[] bytes) {
            this.id = id;
            this.words = words;
            this.bytes = bytes;
        }
    }

    static long seed;
    static Node[][] parts;

    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    static long key(int part, int id) {
        return mix(seed ^ ((long) part << 40) ^ ((long) id * 0x9e3779b97f4a7c15L));
    }

    static int nWords(int part, int id) {
        return 8 + (int) Long.remainderUnsigned(key(part, id), 1017);
    }

    static int nBytes(int part, int id) {
        return (int) Long.remainderUnsigned(key(part, id) >>> 17, 2049);
    }

    static int linkOf(int part, int id) {
        return id == 0 ? 0 : (int) Long.remainderUnsigned(key(part, id) >>> 7, id);
    }

    // Contents like a real heap's, which compress: counters and text.
    static final byte[] TEXT =
        "the order of item 42 shipped to the user; session token pending, price 17.50. "
            .getBytes(java.nio.charset.StandardCharsets.US_ASCII);

    static long word(long k, int i) {
        return (k & 0xffffff) + 3L * i;
    }

    static byte byteAt(long k, int i) {
        return TEXT[(int) ((i + (k >>> 40)) % TEXT.length)];
    }

    static Node make(int part, int id) {
        long k = key(part, id);
        long[] w = new long[nWords(part, id)];
        byte[] b = new byte[nBytes(part, id)];

        for (int i = 0; i < w.length; i++)
            w[i] = word(k, i);
        for (int i = 0; i < b.length; i++)
            b[i] = byteAt(k, i);
        return new Node(id, w, b);
    }

    static Node[] build(int part, long bytes) {
        List<Node> l = new ArrayList<>();
        long have = 0;

        for (int id = 0; have < bytes; id++) {
            Node n = make(part, id);
            have += 48 + 16 + 8L * n.words.length + 16 + n.bytes.length;
            l.add(n);
        }
        Node[] a = l.toArray(new Node[0]);
        relink(a, part);
        return a;
    }

    static void relink(Node[] a, int part) {
        for (int id = 0; id < a.length; id++)
            a[id].link = a[linkOf(part, id)];
    }

    // Every byte of a part against the seed; its checksum, or an exception
    // that says what differs first.
    static long walk(int part) {
        Node[] a = parts[part];
        long h = part;

        for (int id = 0; id < a.length; id++) {
            Node n = a[id];
            long k = key(part, id);

            if (n.id != id)
                throw new IllegalStateException(part + " " + id + " id " + n.id);
            if (n.link == null || n.link.id != linkOf(part, id))
                throw new IllegalStateException(part + " " + id + " link");
            if (n.words.length != nWords(part, id) || n.bytes.length != nBytes(part, id))
                throw new IllegalStateException(part + " " + id + " length");
            for (int i = 0; i < n.words.length; i++) {
                if (n.words[i] != word(k, i))
                    throw new IllegalStateException(part + " " + id + " word " + i);
                h = mix(h ^ n.words[i]);
            }
            for (int i = 0; i < n.bytes.length; i++) {
                if (n.bytes[i] != byteAt(k, i))
                    throw new IllegalStateException(part + " " + id + " byte " + i);
                h = h * 31 + n.bytes[i];
            }
            h = mix(h ^ n.link.id);
        }
        return h;
    }

    // A quarter of the part's nodes new (same contents), the part relinked
    // so the old ones are garbage, and garbage of its own besides.
    static long churn(int part, int round) {
        Node[] a = parts[part];
        long junk = 0;

        for (int id = 0; id < a.length; id++) {
            if (((mix(key(part, id) + round) >>> 3) & 3) == 0)
                a[id] = make(part, id);
            if ((id & 63) == 0) {
                long[] g = new long[4096];
                g[id & 4095] = id;
                junk += g[id & 4095];
            }
        }
        relink(a, part);
        return junk;
    }

    static long all(ExecutorService pool, int nparts, java.util.function.IntToLongFunction f)
            throws Exception {
        List<Future<Long>> fs = new ArrayList<>();
        long h = 0;

        for (int p = 0; p < nparts; p++) {
            final int part = p;
            fs.add(pool.submit((Callable<Long>) () -> f.applyAsLong(part)));
        }
        for (Future<Long> fu : fs)
            h = mix(h ^ fu.get());
        return h;
    }

    static String walkAll(ExecutorService pool, int nparts) throws Exception {
        try {
            return String.format("ok %016x", all(pool, nparts, GcHeap::walk));
        } catch (java.util.concurrent.ExecutionException e) {
            return "bad " + e.getCause().getMessage();
        }
    }

    public static void main(String[] args) throws Exception {
        seed = Long.parseLong(args[0]);
        long mib = Long.parseLong(args[1]);
        int nparts = Integer.parseInt(args[2]);
        ExecutorService pool = Executors.newFixedThreadPool(nparts);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        int round = 0;
        String line;

        parts = new Node[nparts][];
        all(pool, nparts, p -> {
            parts[p] = build(p, (mib << 20) / nparts);
            return 0;
        });
        String first = walkAll(pool, nparts);
        if (!first.startsWith("ok "))
            System.out.println(first);
        else
            System.out.println("ready " + first.substring(3) + " " + (Runtime.getRuntime().maxMemory() >> 20));
        System.out.flush();
        while ((line = in.readLine()) != null) {
            if (line.equals("walk")) {
                System.out.println(walkAll(pool, nparts));
            } else if (line.equals("churn")) {
                final int r = ++round;
                all(pool, nparts, p -> churn(p, r));
                System.gc();
                System.out.println(walkAll(pool, nparts));
            } else if (line.equals("exit")) {
                break;
            } else {
                System.out.println("bad command " + line);
            }
            System.out.flush();
        }
        pool.shutdown();
    }
}
