package pickle

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// sbu is a SHORT_BINUNICODE opcode pushing s.
func sbu(s string) string { return "\x8c" + string([]byte{byte(len(s))}) + s }

// sbb is a SHORT_BINBYTES opcode pushing b.
func sbb(b string) string { return "C" + string([]byte{byte(len(b))}) + b }

// npArray is a protocol 4 pickle of a numpy array as numpy writes it, made
// of opcodes for the dtype's type code, the shape, is_fortran and the data.
// tail follows the array's BUILD; it must end with STOP.
func npArray(code, shape, fortran, data, tail string) string {
	return "\x80\x04" +
		sbu("numpy.core.multiarray") + sbu("_reconstruct") + "\x93" +
		sbu("numpy") + sbu("ndarray") + "\x93" + "K\x00\x85" + sbb("b") + "\x87R" +
		"(K\x01" + shape +
		sbu("numpy") + sbu("dtype") + "\x93" + sbu(code) + "\x89\x88\x87R" +
		"(K\x03" + sbu("<") + "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb" +
		fortran + data + "tb" + tail
}

// nested is a pickle of levels lists nested in one another around the
// value that the opcodes inner push, or around nothing if inner is empty.
func nested(levels int, inner string) string {
	s := "\x80\x02" + strings.Repeat("]", levels) + inner
	if inner != "" {
		s += "a"
	}
	return s + strings.Repeat("a", levels-1) + "."
}

// expansion is a pickle of 40 levels of lists, each holding ten
// references to the one below: 10^40 elements from a few hundred bytes.
func expansion() string {
	s := "\x80\x02](" + strings.Repeat("K\x01", 10) + "eq\x00"
	for range 40 {
		s += "](" + strings.Repeat("h\x00", 10) + "eq\x00"
	}
	return s + "."
}

// tupleBomb pushes a tuple of 2^60 ones made of 60 levels of pairs, all
// sharing the level below, and leaves it in memo 0.
const tupleBomb = "K\x01K\x01\x86q\x00"

func tupleBombOps() string { return tupleBomb + strings.Repeat("h\x00h\x00\x86q\x00", 60) }

type malformedTest struct {
	name, data, err string
}

// hugeLengthTests declare lengths far beyond their input, which Unmarshal
// must reject before allocating anything for them.
var hugeLengthTests = []malformedTest{
	{"BINUNICODE 4 GiB", "X\xff\xff\xff\xffabc.", "truncated"},
	{"BINUNICODE8 2^64-1", "\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc.", "truncated"},
	{"BINBYTES 2 GiB", "B\xff\xff\xff\x7fabc.", "truncated"},
	{"BINBYTES8 2^63", "\x8e\x00\x00\x00\x00\x00\x00\x00\x80abc.", "truncated"},
	{"BYTEARRAY8 2^62", "\x96\x00\x00\x00\x00\x00\x00\x00\x40abc.", "truncated"},
	{"BINSTRING negative", "T\xff\xff\xff\xffabc.", "negative length"},
	{"BINSTRING 2 GiB", "T\xff\xff\xff\x7fabc.", "truncated"},
	{"LONG4 negative", "\x8b\xff\xff\xff\xff\x01.", "negative byte count"},
	{"LONG4 2 GiB", "\x8b\xff\xff\xff\x7f\x01.", "truncated"},
	{"FRAME 2^63", "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x80N.", "truncated"},
	{"LONG_BINPUT and LONG_BINGET at 2^32-1", "Nr\xff\xff\xff\xffj\xfe\xff\xff\xff.", "memo key 4294967294 not found"},
	{"array of 2^40 elements", npArray("f8", "\x8a\x06\x00\x00\x00\x00\x00\x01\x85", "\x89", sbb(""), "."), "numpy array data is 0 bytes"},
	{"array of 2^124 elements", npArray("f8", "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x86",
		"\x89", sbb(""), "."), "too large"},
	{"object array of 2^40 elements", npArray("O8", "\x8a\x06\x00\x00\x00\x00\x00\x01\x85", "\x89", "]", "."), "needs a list"},
}

// malformedTests are inputs Unmarshal must reject, each with a part of the
// error it must return.
var malformedTests = append(slices.Clone(hugeLengthTests), []malformedTest{
	// Truncated and unterminated input.
	{"empty", "", "no STOP"},
	{"proto only", "\x80\x04", "no STOP"},
	{"missing STOP", "\x80\x02K\x01", "no STOP"},
	{"missing STOP after list", "\x80\x02](K\x01K\x02e", "no STOP"},
	{"PROTO without version", "\x80", "truncated"},
	{"BININT1 without argument", "K", "truncated"},
	{"BININT truncated", "J\x01\x02", "truncated"},
	{"BINFLOAT truncated", "G\x3f\xf0", "truncated"},
	{"INT without newline", "I12", "truncated"},
	{"GLOBAL without name", "cmodule\n", "truncated"},
	{"SHORT_BINUNICODE truncated", "\x8c\x05abc", "truncated"},
	{"FRAME header truncated", "\x80\x04\x95\x01\x00", "truncated"},
	{"trailing data", "N.N", "trailing data"},
	{"two pickles", "\x80\x02K\x01.\x80\x02K\x02.", "trailing data"},

	// Bad opcodes and arguments.
	{"unknown opcode", "\xff.", "unknown opcode 0xff"},
	{"unknown opcode after proto", "\x80\x04\xfe.", "unknown opcode 0xfe"},
	{"protocol 6", "\x80\x06N.", "unsupported pickle protocol 6"},
	{"INT not a number", "Iabc\n.", "invalid integer"},
	{"INT with 5000 digits", "I" + strings.Repeat("9", 5000) + "\n.", "more than 4300 digits"},
	{"LONG with 5000 digits", "L" + strings.Repeat("9", 5000) + "L\n.", "more than 4300 digits"},
	{"FLOAT not a number", "Fxyz\n.", "invalid float"},
	{"STRING unquoted", "Sabc\n.", "must be quoted"},
	{"STRING unbalanced quotes", "S'abc\"\n.", "must be quoted"},
	{"STRING ends with backslash", "S'abc\\'\n.", `string ends with \`},
	{"STRING bad hex escape", "S'\\x4g'\n.", `invalid \x escape`},
	{"STRING truncated hex escape", "S'\\x4'\n.", `truncated \x escape`},
	{"UNICODE truncated escape", "V\\u12\n.", `truncated \u escape`},
	{"UNICODE escape beyond U+10FFFF", "V\\U00110000\n.", `invalid \U escape`},
	{"GET missing", "g1\n.", "memo key 1 not found"},
	{"BINGET missing", "\x80\x02h\x05.", "memo key 5 not found"},
	{"GET bad index", "gx\n.", "invalid memo index"},
	{"PUT bad index", "Np-1\n.", "invalid memo index"},
	{"persistent ID", "P1\n.", "persistent IDs are not supported"},
	{"binary persistent ID", "NQ.", "persistent IDs are not supported"},
	{"EXT1", "\x80\x02\x82\x01.", "extension registry"},
	{"EXT4", "\x80\x02\x84\x01\x00\x00\x00.", "extension registry"},
	{"NEXT_BUFFER", "\x80\x05\x97.", "out-of-band buffers"},

	// Stack and mark misuse.
	{"STOP on empty stack", ".", "stack underflow"},
	{"STOP above MARK", "N(.", "stack underflow"},
	{"POP on empty stack", "0.", "no MARK"},
	{"DUP on empty stack", "2.", "stack underflow"},
	{"PUT on empty stack", "p0\n.", "stack underflow"},
	{"TUPLE without MARK", "K\x01t.", "no MARK"},
	{"TUPLE2 with one item", "\x80\x02K\x01\x86.", "stack underflow"},
	{"TUPLE1 across MARK", "\x80\x02K\x01(\x85.", "stack underflow"},
	{"APPEND on empty stack", "a.", "stack underflow"},
	{"APPEND to None", "NK\x01a.", "cannot append to None"},
	{"APPENDS to int", "K\x01(K\x02e.", "cannot append to int"},
	{"SETITEM on list", "]K\x01K\x02s.", "cannot set items on list"},
	{"SETITEMS without MARK", "}K\x01K\x02u.", "no MARK"},
	{"DICT with odd items", "(K\x01d.", "odd number of items"},
	{"SETITEMS with odd items", "}(K\x01u.", "odd number of items"},
	{"ADDITEMS to None", "\x80\x04N(K\x01\x90.", "cannot add items to None"},
	{"BUILD on int", "K\x01Nb.", "cannot set state on int"},
	{"BUILD on empty stack", "Nb.", "stack underflow"},

	// Unhashable keys and elements.
	{"list as dict key", "}]K\x01s.", "unhashable dict key: list"},
	{"dict as dict key", "(}K\x01d.", "unhashable dict key: dict"},
	{"tuple of lists as dict key", "\x80\x02}]\x85K\x01s.", "unhashable dict key: tuple"},
	{"list in set", "\x80\x04\x8f(]\x90.", "unhashable set element: list"},
	{"set in frozenset", "\x80\x04(\x8f\x91.", "unhashable set element: set"},
	{"list passed to frozenset()", "\x80\x02c__builtin__\nfrozenset\n]]a\x85R.", "unhashable set element: list"},

	// Globals and calls.
	{"REDUCE on int", "\x80\x02K\x01)R.", "int is not callable"},
	{"REDUCE with non-tuple args", "\x80\x02cm\nf\nNR.", "arguments must be a tuple"},
	{"NEWOBJ_EX with non-dict kwargs", "\x80\x04cm\nC\n)N\x92.", "arguments must be a tuple and a dict"},
	{"STACK_GLOBAL with ints", "\x80\x04K\x01K\x02\x93.", "module and name must be str"},
	{"OBJ without class", "(o.", "missing class"},
	{"latin1 encoding of U+0100", "c_codecs\nencode\n(V\\u0100\nVlatin1\ntR.", "cannot encode U+0100 in latin1"},

	// numpy arrays and scalars.
	{"array without BUILD", "\x80\x04" + sbu("numpy.core.multiarray") + sbu("_reconstruct") + "\x93" +
		sbu("numpy") + sbu("ndarray") + "\x93K\x00\x85" + sbb("b") + "\x87R.", "no BUILD"},
	{"array built twice", npArray("f8", "K\x01\x85", "\x89", sbb("\x00\x00\x00\x00\x00\x00\xf0\x3f"), "Nb."), "already has its state"},
	{"array data too short", npArray("f8", "K\x01\x85", "\x89", sbb("\x00\x00\x00"), "."), "numpy array data is 3 bytes"},
	{"array data not bytes", npArray("f8", "K\x01\x85", "\x89", "N", "."), "must be bytes, not None"},
	{"array negative dimension", npArray("f8", "J\xff\xff\xff\xff\x85", "\x89", sbb(""), "."), "invalid numpy array dimension -1"},
	{"array with 65 dimensions", npArray("f8", "("+strings.Repeat("K\x01", 65)+"t", "\x89", sbb("\x00\x00\x00\x00\x00\x00\xf0\x3f"), "."),
		"invalid numpy array shape"},
	{"array shape not a tuple", npArray("f8", "N", "\x89", sbb(""), "."), "invalid numpy array shape None"},
	{"array dtype f3", npArray("f3", "K\x01\x85", "\x89", sbb("\x00\x00\x00"), "."), "unsupported numpy dtype f3"},
	{"array dtype x8", npArray("x8", "K\x01\x85", "\x89", sbb("\x00\x00\x00\x00\x00\x00\x00\x00"), "."), "unsupported numpy dtype"},
	{"array dtype empty", npArray("", "K\x01\x85", "\x89", sbb(""), "."), "invalid numpy dtype"},
	{"array dtype datetime unit on int", npArray("i8[ns]", "K\x01\x85", "\x89", sbb("\x00\x00\x00\x00\x00\x00\x00\x00"), "."),
		"invalid numpy dtype"},
	{"array is_fortran None", npArray("f8", "K\x01\x85", "N", sbb("\x00\x00\x00\x00\x00\x00\xf0\x3f"), "."), "is_fortran is None"},
	{"array state None", "\x80\x04" + sbu("numpy.core.multiarray") + sbu("_reconstruct") + "\x93" +
		sbu("numpy") + sbu("ndarray") + "\x93K\x00\x85" + sbb("b") + "\x87RNb.", "invalid numpy array state None"},
	{"object array too short", npArray("O8", "K\x02\x85", "\x89", "]K\x01a", "."), "needs a list of 2 items"},
	{"scalar of None dtype", "\x80\x02cnumpy.core.multiarray\nscalar\nNC\x00\x86R.", "expected a numpy dtype, got None"},
	{"scalar dtype of int", "\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nK\x08\x85RC\x00\x86R.", "invalid numpy dtype argument int"},
	{"scalar data too short", "\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\n" + sbu("f8") + "\x85RC\x01\x00\x86R.",
		"numpy array data is 1 bytes"},

	// Values that refer to themselves.
	{"list containing itself", "\x80\x02]q\x00h\x00a.", "contains itself"},
	{"dict containing itself", "\x80\x02}q\x00K\x01h\x00s.", "contains itself"},
	{"list in a tuple in itself", "\x80\x02]q\x00h\x00\x85a.", "contains itself"},
	{"object state is itself", "\x80\x02cm\nC\n)\x81q\x00h\x00b.", "contains itself"},
	{"object appended to itself", "\x80\x02cm\nC\n)\x81q\x00h\x00a.", "contains itself"},
	{"object in a set in its state", "\x80\x04cm\nC\n)\x81q\x00\x8f(h\x00\x90b.", "contains itself"},
	{"object array containing itself", "\x80\x04" + sbu("numpy.core.multiarray") + sbu("_reconstruct") + "\x93" +
		sbu("numpy") + sbu("ndarray") + "\x93K\x00\x85" + sbb("b") + "\x87R\x94" +
		"(K\x01K\x01\x85" + sbu("numpy") + sbu("dtype") + "\x93" + sbu("O8") + "\x89\x88\x87R" +
		"(K\x03" + sbu("|") + "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb\x89]h\x00atb.", "contains itself"},

	// Nesting and expansion.
	{"lists nested 20,000 deep", nested(20000, ""), "nests deeper than 10000"},
	{"tuples nested 20,000 deep", "\x80\x02)" + strings.Repeat("\x85", 20000) + ".", "nests deeper than 10000"},
	{"dicts nested 20,000 deep", "\x80\x02" + strings.Repeat("}K\x01", 20000) + "N" + strings.Repeat("s", 20000) + ".",
		"nests deeper than 10000"},
	{"shared list reached 11,000 deep", "\x80\x02" + strings.Repeat("]", 6000) + strings.Repeat("a", 5999) + "q\x00" +
		strings.Repeat("]", 5000) + "h\x00" + strings.Repeat("a", 5000) + "\x86.", "nests deeper than 10000"},
	{"shared lists expanding to 10^40", expansion(), "expands to more than"},
	{"shared tuples expanding to 2^60", "\x80\x02" + tupleBombOps() + ".", "expands to more than"},
	{"dict key of 2^60 items", "\x80\x02" + tupleBombOps() + "}h\x00Ns.", "work limit"},
	{"set element of 2^60 items", "\x80\x04" + tupleBombOps() + "\x8f(h\x00\x90.", "work limit"},
}...)

func TestUnmarshalMalformed(t *testing.T) {
	for _, tt := range malformedTests {
		v, err := Unmarshal([]byte(tt.data))
		if err == nil {
			t.Errorf("%s: Unmarshal succeeded with %s", tt.name, short(v))
			continue
		}
		if v != nil {
			t.Errorf("%s: Unmarshal returned %s with its error", tt.name, short(v))
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "pickle: ") || !strings.Contains(msg, tt.err) {
			if len(msg) > 300 {
				msg = msg[:300] + "..."
			}
			t.Errorf("%s: error %q, want one starting with \"pickle: \" and containing %q", tt.name, msg, tt.err)
		}
	}
}

// TestUnmarshalHugeLengthsDoNotAllocate checks that declared lengths and
// shapes are checked against the input before anything is allocated for
// them.
func TestUnmarshalHugeLengthsDoNotAllocate(t *testing.T) {
	for _, tt := range hugeLengthTests {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Unmarshal([]byte(tt.data))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
			t.Errorf("%s: allocated %d bytes", tt.name, alloc)
		}
	}
}

// TestUnmarshalTruncated checks that every proper prefix of valid pickles
// is an error.
func TestUnmarshalTruncated(t *testing.T) {
	for i, v := range fuzzValues() {
		data, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(data) {
			if got, err := Unmarshal(data[:n]); err == nil {
				t.Errorf("value %d (%s): the first %d of %d bytes decode as %s", i, short(v), n, len(data), short(got))
			}
		}
	}
}

// TestUnmarshalNestingLimit checks the nesting limit at its boundary: a
// value may hold values 10,000 levels below it, and no deeper, whether or
// not parts of it are shared, so that whatever Unmarshal returns Marshal
// writes and ToJSON renders in full.
func TestUnmarshalNestingLimit(t *testing.T) {
	// The value is the tuple (inner, chain), where inner is [1] and chain
	// is inner in lists nested levels deep, so that the 1 is levels+2
	// below the tuple. With shared set, both refer to one list.
	pickle := func(levels int, shared bool) []byte {
		var b strings.Builder
		b.WriteString("\x80\x02]K\x01aq\x00")
		b.WriteString(strings.Repeat("]", levels))
		if shared {
			b.WriteString("h\x00")
		} else {
			b.WriteString("]K\x01a")
		}
		b.WriteString(strings.Repeat("a", levels))
		b.WriteString("\x86.")
		return []byte(b.String())
	}
	for _, levels := range []int{maxDepth - 2, maxDepth - 1} {
		for _, shared := range []bool{false, true} {
			name := fmt.Sprintf("1 at depth %d, shared=%v", levels+2, shared)
			v, err := Unmarshal(pickle(levels, shared))
			if levels+2 > maxDepth {
				if err == nil || !strings.Contains(err.Error(), "nests deeper") {
					t.Errorf("%s: got error %v, want one about nesting", name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if _, err := Marshal(v); err != nil {
				t.Errorf("%s: Marshal: %.200s", name, err)
			}
			if text := jsonText(t, ToJSON(v)); strings.Contains(text, "null") {
				t.Errorf("%s: ToJSON cut the value off", name)
			}
		}
	}
	// An empty list counts as a level too.
	if _, err := Unmarshal([]byte(nested(maxDepth+1, ""))); err != nil {
		t.Errorf("%d nested lists: %v", maxDepth+1, err)
	}
	if _, err := Unmarshal([]byte(nested(maxDepth+2, ""))); err == nil {
		t.Errorf("%d nested lists: no error", maxDepth+2)
	}
}
