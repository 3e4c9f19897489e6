/* SPDX-License-Identifier: MIT */
/*
 * Deterministic synthetic data.  Every 4 KiB page is a pure function of
 * (kind, seed, index, page number), generated 8 bytes at a time from a
 * splitmix64 stream, so fill and check can work page by page and any page can
 * be regenerated without the others.
 */
#include "datagen.h"

#include <errno.h>
#include <string.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* splitmix64: one add and two multiplies per 8 bytes. */
static inline uint64_t next64(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return mix64(*s);
}

static inline void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t page_key(enum thp_data_kind kind, uint64_t seed,
			 uint64_t index, uint64_t page)
{
	return mix64(seed ^ mix64(index * 0xd6e8feb86659fd93ULL +
				  page * 0x9e3779b97f4a7c15ULL +
				  (uint64_t)kind * 0xa0761d6478bd642fULL + 1));
}

static void gen_random(unsigned char *p, uint64_t s)
{
	for (unsigned i = 0; i < WORDS; i++)
		put64(p + 8 * i, next64(&s));
}

/*
 * Text: words drawn from a Zipf-like list (common words appear several
 * times), with commas, full stops, capitals and line breaks.
 */
struct word {
	char s[15];
	unsigned char len;
};
#define W(x) { x, sizeof(x) - 1 }
static const struct word words[256] = {
	W("the"), W("the"), W("the"), W("the"), W("the"), W("the"), W("of"), W("of"),
	W("of"), W("of"), W("and"), W("and"), W("and"), W("and"), W("to"), W("to"),
	W("to"), W("a"), W("a"), W("a"), W("in"), W("in"), W("in"), W("is"),
	W("is"), W("that"), W("that"), W("it"), W("it"), W("for"), W("for"), W("was"),
	W("was"), W("on"), W("on"), W("with"), W("with"), W("as"), W("as"), W("be"),
	W("by"), W("at"), W("this"), W("from"), W("or"), W("an"), W("but"), W("not"),
	W("are"), W("which"), W("have"), W("had"), W("his"), W("her"), W("they"), W("we"),
	W("you"), W("one"), W("all"), W("were"), W("there"), W("their"), W("been"), W("has"),
	W("more"), W("when"), W("will"), W("would"), W("who"), W("no"), W("if"), W("out"),
	W("so"), W("said"), W("what"), W("up"), W("its"), W("about"), W("into"), W("than"),
	W("them"), W("can"), W("only"), W("other"), W("new"), W("some"), W("could"), W("time"),
	W("these"), W("two"), W("may"), W("then"), W("do"), W("first"), W("any"), W("my"),
	W("now"), W("such"), W("like"), W("our"), W("over"), W("man"), W("me"), W("even"),
	W("most"), W("made"), W("after"), W("also"), W("did"), W("many"), W("before"), W("must"),
	W("through"), W("back"), W("years"), W("where"), W("much"), W("your"), W("way"), W("well"),
	W("down"), W("should"), W("because"), W("each"), W("just"), W("those"), W("people"), W("how"),
	W("too"), W("little"), W("state"), W("good"), W("very"), W("make"), W("world"), W("still"),
	W("own"), W("see"), W("men"), W("work"), W("long"), W("get"), W("here"), W("between"),
	W("both"), W("life"), W("being"), W("under"), W("never"), W("day"), W("same"), W("another"),
	W("know"), W("while"), W("last"), W("might"), W("us"), W("great"), W("old"), W("year"),
	W("off"), W("come"), W("since"), W("against"), W("go"), W("came"), W("right"), W("used"),
	W("take"), W("three"), W("memory"), W("page"), W("system"), W("process"), W("kernel"), W("server"),
	W("house"), W("water"), W("number"), W("small"), W("large"), W("general"), W("public"), W("school"),
	W("without"), W("during"), W("question"), W("government"), W("development"), W("important"), W("possible"), W("information"),
	W("always"), W("within"), W("however"), W("several"), W("family"), W("country"), W("problem"), W("program"),
	W("night"), W("point"), W("city"), W("community"), W("president"), W("company"), W("business"), W("service"),
	W("hand"), W("part"), W("place"), W("case"), W("week"), W("group"), W("fact"), W("morning"),
	W("light"), W("river"), W("small"), W("early"), W("young"), W("later"), W("second"), W("order"),
	W("history"), W("question"), W("reason"), W("result"), W("change"), W("market"), W("value"), W("level"),
	W("table"), W("window"), W("figure"), W("report"), W("language"), W("computer"), W("network"), W("storage"),
	W("evening"), W("window"), W("mountain"), W("garden"), W("letter"), W("example"), W("answer"), W("student"),
	W("simple"), W("quickly"), W("certain"), W("different"), W("following"), W("particular"), W("available"), W("together"),
};
#undef W

static void gen_text(unsigned char *p, uint64_t s)
{
	/* 16-byte word copies may run past the page: build it with slack. */
	unsigned char tmp[PAGE + 32];
	unsigned pos = 0, bits = 0, cap = 1;
	uint64_t r = 0;

	while (pos < PAGE) {
		if (bits < 24) {
			r = next64(&s);
			bits = 64;
		}
		/* AND of two bytes favours the common words at the front. */
		const struct word *w = &words[r & ((r >> 8) | 0x0f) & 0xff];
		unsigned punct = (r >> 16) & 0xff;

		r >>= 24;
		bits -= 24;
		memcpy(tmp + pos, w, 16);
		if (cap)
			tmp[pos] ^= 0x20;
		pos += w->len;
		cap = 0;
		if (punct < 16) {
			tmp[pos++] = ',';
		} else if (punct < 28) {
			tmp[pos++] = '.';
			cap = 1;
		}
		/* ~1 paragraph break per 256 words. */
		tmp[pos++] = punct == 255 ? '\n' : ' ';
	}
	memcpy(p, tmp, PAGE);
}

/*
 * Code: functions of x86-64-like instructions: prologue, a body picked from
 * common templates with random displacements/immediates, epilogue, int3
 * padding to 16 bytes.
 */
struct insn {
	uint64_t b;    /* the bytes, little-endian */
	uint64_t rnd;  /* random bits OR-ed in: small, 8-aligned displacements */
	unsigned len;
};
static const struct insn insns[32] = {
	{ 0x0000000000458b48ULL, 0x0000000078000000ULL, 4 }, /* mov rax,[rbp+d8] */
	{ 0x0000000000458948ULL, 0x0000000078000000ULL, 4 }, /* mov [rbp+d8],rax */
	{ 0x000000000000458bULL, 0x0000000000780000ULL, 3 }, /* mov eax,[rbp+d8] */
	{ 0x0000000000004589ULL, 0x0000000000780000ULL, 3 }, /* mov [rbp+d8],eax */
	{ 0x0000000000c78948ULL, 0x0000000000000000ULL, 3 }, /* mov rdi,rax */
	{ 0x0000000000de8948ULL, 0x0000000000000000ULL, 3 }, /* mov rsi,rbx */
	{ 0x0000000000e7894cULL, 0x0000000000000000ULL, 3 }, /* mov rdi,r12 */
	{ 0x00000000000000e8ULL, 0x0000000000787800ULL, 5 }, /* call rel32 (near) */
	{ 0x000000ffff0000e8ULL, 0x0000000000787800ULL, 5 }, /* call rel32 (back) */
	{ 0x0000000000000074ULL, 0x0000000000007800ULL, 2 }, /* je rel8 */
	{ 0x0000000000000075ULL, 0x0000000000007800ULL, 2 }, /* jne rel8 */
	{ 0x00000000000000ebULL, 0x0000000000007800ULL, 2 }, /* jmp rel8 */
	{ 0x000000000000840fULL, 0x0000000078780000ULL, 6 }, /* je rel32 */
	{ 0x000000000000c085ULL, 0x0000000000000000ULL, 2 }, /* test eax,eax */
	{ 0x0000000000c08548ULL, 0x0000000000000000ULL, 3 }, /* test rax,rax */
	{ 0x000000000000f883ULL, 0x0000000000780000ULL, 3 }, /* cmp eax,imm8 */
	{ 0x0000000008c08348ULL, 0x0000000000000000ULL, 4 }, /* add rax,8 */
	{ 0x0000000000c48348ULL, 0x0000000078000000ULL, 4 }, /* add rsp,imm8 */
	{ 0x000000000000c031ULL, 0x0000000000000000ULL, 2 }, /* xor eax,eax */
	{ 0x00000000000000b8ULL, 0x0000000000007800ULL, 5 }, /* mov eax,imm32 */
	{ 0x00000000000000bfULL, 0x0000000000007800ULL, 5 }, /* mov edi,imm32 */
	{ 0x0000000000058d48ULL, 0x0000007878000000ULL, 7 }, /* lea rax,[rip+d32] */
	{ 0x00000000003d8d48ULL, 0x0000007878000000ULL, 7 }, /* lea rdi,[rip+d32] */
	{ 0x0000000000058b48ULL, 0x0000007878000000ULL, 7 }, /* mov rax,[rip+d32] */
	{ 0x0000000000478b48ULL, 0x0000000078000000ULL, 4 }, /* mov rax,[rdi+d8] */
	{ 0x00000000007b8b48ULL, 0x0000000078000000ULL, 4 }, /* mov rdi,[rbx+d8] */
	{ 0x0000000000244489ULL, 0x0000000078000000ULL, 4 }, /* mov [rsp+d8],eax */
	{ 0x0000000000000053ULL, 0x0000000000000000ULL, 1 }, /* push rbx */
	{ 0x000000000000005bULL, 0x0000000000000000ULL, 1 }, /* pop rbx */
	{ 0x0000000000005441ULL, 0x0000000000000000ULL, 2 }, /* push r12 */
	{ 0x0000000000c0b60fULL, 0x0000000000000000ULL, 3 }, /* movzx eax,al */
	{ 0x0000000000d06348ULL, 0x0000000000000000ULL, 3 }, /* movsxd rdx,eax */
};

static void gen_code(unsigned char *p, uint64_t s)
{
	static const unsigned char prologue[8] = { 0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20 };
	unsigned char tmp[PAGE + 64];
	unsigned pos = 0;

	while (pos < PAGE) {
		uint64_t r = next64(&s);
		unsigned n = 4 + (r & 31);

		memcpy(tmp + pos, prologue, 8);
		tmp[pos + 7] = (unsigned char)(0x10 + ((r >> 5) & 0x30));
		pos += 8;
		for (unsigned i = 0; i < n && pos < PAGE; i++) {
			const struct insn *in;

			r = next64(&s);
			in = &insns[r >> 59];
			put64(tmp + pos, in->b | (r & in->rnd));
			pos += in->len;
		}
		/* leave; ret; int3 padding to 16 bytes */
		put64(tmp + pos, 0xccccccccccccc3c9ULL);
		put64(tmp + pos + 8, 0xccccccccccccccccULL);
		put64(tmp + pos + 16, 0xccccccccccccccccULL);
		pos = (pos + 2 + 15) & ~15u;
	}
	memcpy(p, tmp, PAGE);
}

/*
 * Ints: heap objects of 4 words -- two pointers clustered near one of a few
 * base addresses (brk heap, mmap arenas), a small count and a small flags
 * word -- or plain arrays of small integers.
 */
static void gen_ints(unsigned char *p, uint64_t s, uint64_t seed)
{
	uint64_t base[4];
	uint64_t sel = next64(&s);

	base[0] = 0x0000555555554000ULL + ((mix64(seed) & 0xffff) << 12);
	base[1] = 0x00007f0000000000ULL + ((mix64(seed + 1) & 0xffffff) << 12);
	base[2] = 0x00007f0000000000ULL + ((mix64(seed + 2) & 0xffffff) << 12);
	base[3] = 0x00007ff000000000ULL + ((mix64(seed + 3) & 0xffffff) << 12);

	if ((sel & 3) == 0) {
		/* int32 array of small values. */
		for (unsigned i = 0; i < WORDS; i++) {
			uint64_t r = next64(&s);
			uint64_t v = (r & 0x3ff) >> ((r >> 10) & 7);
			uint64_t w = ((r >> 16) & 0x3ff) >> ((r >> 26) & 7);

			put64(p + 8 * i, v | (w << 32));
		}
		return;
	}
	uint64_t b = base[(sel >> 2) & 3];
	for (unsigned i = 0; i < WORDS; i += 4) {
		uint64_t r = next64(&s);
		uint64_t p0 = (r & 7) == 0 ? 0 : b + (r & 0xffff0);
		uint64_t p1 = ((r >> 3) & 7) == 0 ? 0 : b + ((r >> 20) & 0xffff0);

		put64(p + 8 * i, p0);
		put64(p + 8 * i + 8, p1);
		put64(p + 8 * i + 16, (r >> 40) & 0xff);
		put64(p + 8 * i + 24, ((r >> 48) & 3) | (((r >> 50) & 1) << 8));
	}
}

/*
 * HEAPMIX per 4 KiB page: 25 % zero, 40 % ints/pointers, 20 % text,
 * 8 % code, 7 % random (already compressed).
 */
static enum thp_data_kind heapmix_pick(uint64_t key)
{
	/* Top 32 bits scaled to 0..99: uniform, independent of the page stream. */
	unsigned v = (unsigned)(((key >> 32) * 100) >> 32);

	if (v < 25)
		return THP_DATA_ZERO;
	if (v < 65)
		return THP_DATA_INTS;
	if (v < 85)
		return THP_DATA_TEXT;
	if (v < 93)
		return THP_DATA_CODE;
	return THP_DATA_RANDOM;
}

static void gen_page(unsigned char *p, enum thp_data_kind kind,
		     uint64_t seed, uint64_t index, uint64_t page)
{
	uint64_t key = page_key(kind, seed, index, page);

	if (kind == THP_DATA_HEAPMIX) {
		kind = heapmix_pick(key);
		key = mix64(key);
	}
	switch (kind) {
	case THP_DATA_RANDOM:
		gen_random(p, key);
		break;
	case THP_DATA_TEXT:
		gen_text(p, key);
		break;
	case THP_DATA_CODE:
		gen_code(p, key);
		break;
	case THP_DATA_INTS:
		gen_ints(p, key, seed);
		break;
	case THP_DATA_PATTERN: {
		/* word at byte offset o of the region = mix64(k + o). */
		uint64_t k = mix64(seed ^ mix64(index + 0x5851f42d4c957f2dULL));
		uint64_t o = page * PAGE;

		for (unsigned i = 0; i < WORDS; i++)
			put64(p + 8 * i, mix64(k + o + 8 * i));
		break;
	}
	case THP_DATA_ZERO:
	case THP_DATA_HEAPMIX:
	case THP_DATA__MAX:
	default:
		memset(p, 0, PAGE);
		break;
	}
}

void thp_datagen_fill(void *buf, size_t len, enum thp_data_kind kind,
		      uint64_t seed, uint64_t index)
{
	unsigned char *p = buf;
	size_t npages = len / PAGE;

	if (kind == THP_DATA_ZERO) {
		memset(buf, 0, len);
		return;
	}
	for (size_t i = 0; i < npages; i++)
		gen_page(p + i * PAGE, kind, seed, index, i);
	/* A stray tail (len not a page multiple) is zeroed, never left stale. */
	if (len % PAGE)
		memset(p + npages * PAGE, 0, len % PAGE);
}

static long first_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

long thp_datagen_check(const void *buf, size_t len, enum thp_data_kind kind,
		       uint64_t seed, uint64_t index)
{
	static const unsigned char zero[PAGE];
	const unsigned char *p = buf;
	unsigned char want[PAGE];

	for (size_t off = 0; off < len; off += PAGE) {
		size_t n = len - off < PAGE ? len - off : PAGE;
		const unsigned char *exp = zero;

		if (n == PAGE && kind != THP_DATA_ZERO) {
			gen_page(want, kind, seed, index, off / PAGE);
			exp = want;
		}
		if (memcmp(p + off, exp, n) != 0)
			return (long)off + first_diff(p + off, exp, n);
	}
	return -1;
}

static const char *const names[THP_DATA__MAX] = {
	[THP_DATA_ZERO] = "zero",
	[THP_DATA_RANDOM] = "random",
	[THP_DATA_TEXT] = "text",
	[THP_DATA_CODE] = "code",
	[THP_DATA_INTS] = "ints",
	[THP_DATA_HEAPMIX] = "heapmix",
	[THP_DATA_PATTERN] = "pattern",
};

static const char *const descriptions[THP_DATA__MAX] = {
	[THP_DATA_ZERO] = "all zero bytes",
	[THP_DATA_RANDOM] = "uniform random bytes (splitmix64), incompressible",
	[THP_DATA_TEXT] = "English-like text: words from a 256-entry Zipf-like list, commas, full stops, capitals, line breaks",
	[THP_DATA_CODE] = "x86-64-like machine code: functions of prologue, 4-35 common instructions with random small displacements, epilogue, int3 padding",
	[THP_DATA_INTS] = "heap objects: 3/4 of pages are 32-byte structs {2 pointers near one of 4 base addresses (1/8 NULL), small count, flags}, 1/4 arrays of small int32",
	[THP_DATA_HEAPMIX] = "per 4 KiB page: 25% zero, 40% ints/pointers, 20% text, 8% code, 7% random (already compressed); zstd -1 ratio about 2.8",
	[THP_DATA_PATTERN] = "every 8-byte word = mix64(key(seed, index) + byte offset): cheap to verify",
};

const char *thp_datagen_name(enum thp_data_kind kind)
{
	if ((unsigned)kind >= THP_DATA__MAX)
		return "unknown";
	return names[kind];
}

int thp_datagen_parse(const char *name)
{
	if (!name)
		return -EINVAL;
	for (int k = 0; k < THP_DATA__MAX; k++)
		if (strcmp(name, names[k]) == 0)
			return k;
	return -EINVAL;
}

const char *thp_datagen_describe(enum thp_data_kind kind)
{
	if ((unsigned)kind >= THP_DATA__MAX)
		return "unknown data kind";
	return descriptions[kind];
}
