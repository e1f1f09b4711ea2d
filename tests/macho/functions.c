// Functions of the shapes compact unwind encodes: frame-based, frameless leaves, frameless with
// saved registers, a frame too large for an immediate size (x86_64 STACK_IND).
int leaf(int x) { return x * 3 + 1; }
__attribute__((noinline)) int framed(int *p, int n) { int s = 0; for (int i = 0; i < n; i++) s += leaf(p[i]); return s; }
__attribute__((noinline)) long big(long a) { volatile char buf[5000]; buf[a % 5000] = 1; return buf[(a + 1) % 5000] + framed((int*)buf, 3); }
__attribute__((noinline)) long saver(long a, long b, long c) { long r = framed((int*)&a, 1); r += framed((int*)&b, 1); r += framed((int*)&c, 1); return r + a + b + c; }
__attribute__((noinline)) long manyregs(long a, long b, long c, long d) { long x = framed((int*)&a, 1); long y = framed((int*)&b, (int)x); long z = framed((int*)&c, (int)y); long w = framed((int*)&d, (int)z); return x*a + y*b + z*c + w*d + leaf(x+y+z+w); }
__attribute__((noinline)) long leafbuf(long a) { volatile long buf[40]; buf[a & 31] = a; return buf[(a+1)&31]; }
