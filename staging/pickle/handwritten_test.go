package pickle

import (
	"math"
	"math/big"
	"testing"
)

// handwrittenTests are valid pickles, mostly with the protocol 0 to 2
// opcodes that Python 2 wrote and Python 3 no longer does, and the values
// they hold. Python 3 loads each to the same value (with
// encoding='latin1' for Python 2 str).
var handwrittenTests = []struct {
	name, data string
	want       any
}{
	{"INT True", "I01\n.", true},
	{"INT False", "I00\n.", false},
	{"INT", "I-3\n.", int64(-3)},
	{"INT with spaces", "I 7 \n.", int64(7)},
	{"INT beyond int64", "I12345678901234567890\n.", bigInt("12345678901234567890")},
	{"LONG with suffix", "L12345678901234567890L\n.", bigInt("12345678901234567890")},
	{"LONG small", "L5\n.", int64(5)},
	{"FLOAT", "F-1.25\n.", -1.25},
	{"FLOAT -inf", "F-inf\n.", math.Inf(-1)},
	{"FLOAT nan", "Fnan\n.", math.NaN()},
	{"STRING escapes", "S'\\x41\\n\\101\\''\n.", "A\nA'"},
	{"STRING double quotes", "S\"it's\"\n.", "it's"},
	{"STRING unknown escape", "S'a\\qb'\n.", "a\\qb"},
	{"STRING Latin-1 byte", "S'\\xff'\n.", "\xff"}, // Python 2 str: the bytes, not UTF-8
	{"SHORT_BINSTRING", "U\x03abc.", "abc"},
	{"BINSTRING", "T\x03\x00\x00\x00abc.", "abc"},
	{"UNICODE escapes", "Vcaf\\u00e9 \\U0001f389\n.", "caf\u00e9 \U0001f389"},
	{"UNICODE Latin-1 bytes", "Vcaf\xe9\n.", "caf\u00e9"},
	{"UNICODE even backslashes", "V\\\\u0041\n.", "\\\\u0041"},
	{"UNICODE odd backslashes", "V\\\\\\u0041\n.", "\\\\A"},
	{"UNICODE surrogate", "Vx\\ud800y\n.", "x\xed\xa0\x80y"},
	{"LIST", "(I1\nI2\nl.", []any{int64(1), int64(2)}},
	{"APPEND with PUT", "(lp0\nI1\naI2\na.", []any{int64(1), int64(2)}},
	{"DICT", "(S'k'\nI1\nd.", dict("k", int64(1))},
	{"SETITEM with PUT", "(dp0\nS'a'\np1\nI1\ns.", dict("a", int64(1))},
	{"TUPLE", "(I1\nI2\nt.", Tuple{int64(1), int64(2)}},
	{"INST", "(i__main__\nFoo\n(dp0\nS'x'\nI1\nsb.",
		&Object{Module: "__main__", Name: "Foo", State: dict("x", int64(1))}},
	{"OBJ", "(c__main__\nFoo\nI1\no.", &Object{Module: "__main__", Name: "Foo", Args: []any{int64(1)}}},
	{"set()", "c__builtin__\nset\n((lI1\naI2\natR.", Set{int64(1), int64(2)}},
	{"frozenset()", "c__builtin__\nfrozenset\n((lI1\natR.", Set{int64(1)}},
	{"complex()", "c__builtin__\ncomplex\n(F1.5\nF-2\ntR.", complex(1.5, -2)},
	{"_codecs.encode latin1", "c_codecs\nencode\n(Vab\\u00ff\nVlatin1\ntR.", []byte("ab\xff")},
	{"bytes()", "c__builtin__\nbytes\n(tR.", []byte{}},
	{"bytearray(str, latin1)", "\x80\x02c__builtin__\nbytearray\nX\x02\x00\x00\x00\xc3\xbfU\x06latin1\x86R.", []byte{0xff}},
	{"OrderedDict(pairs)", "ccollections\nOrderedDict\n((lp0\n(S'b'\nI1\ntp1\na(S'a'\nI2\ntp2\natR.",
		dict("b", int64(1), "a", int64(2))},
	{"copyreg._reconstructor", "ccopy_reg\n_reconstructor\n(c__main__\nFoo\nc__builtin__\nobject\nNtR(dS'a'\nI1\nsb.",
		&Object{Module: "__main__", Name: "Foo", State: dict("a", int64(1))}},
	{"POP", "\x80\x02K\x01K\x020.", int64(1)},
	{"POP of a MARK", "\x80\x02N(0.", nil},
	{"POP_MARK", "\x80\x02(K\x01K\x021N.", nil},
	{"DUP", "\x80\x02K\x012\x86.", Tuple{int64(1), int64(1)}},
	{"PUT, POP, GET", "S'a'\np0\n0g0\n.", "a"},
	{"BINFLOAT", "\x80\x02G\x3f\xf8\x00\x00\x00\x00\x00\x00.", 1.5},
	{"LONG1 empty", "\x80\x02\x8a\x00.", int64(0)},
	{"LONG1 -32768", "\x80\x02\x8a\x02\x00\x80.", int64(-32768)},
	{"LONG1 2^63", "\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.", new(big.Int).Lsh(big.NewInt(1), 63)},
	{"BININT2", "\x80\x02M\xff\xff.", int64(65535)},
	{"BININT", "\x80\x02J\xff\xff\xff\xff.", int64(-1)},
	{"SHORT_BINBYTES", "\x80\x03C\x02ab.", []byte("ab")},
	{"MEMOIZE", "\x80\x04\x8c\x02hi\x94h\x00\x86.", Tuple{"hi", "hi"}},
	{"FRAME", "\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00\x8c\x02hi.", "hi"},
	{"BYTEARRAY8, READONLY_BUFFER", "\x80\x05\x96\x02\x00\x00\x00\x00\x00\x00\x00ab\x98.", []byte("ab")},
	{"Python 2 module name", "\x80\x02cexceptions\nValueError\nU\x03bad\x85R.",
		&Object{Module: "builtins", Name: "ValueError", Args: []any{"bad"}}},
	{"Python 2 class name", "\x80\x02cUserDict\nIterableUserDict\n)\x81.", &Object{Module: "collections", Name: "UserDict"}},
	{"Python 2 builtin name", "c__builtin__\nunicode\n.", &Object{Module: "builtins", Name: "str"}},
	{"numpy 1.x scalar from Python 2", "\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU\x02i4\x89\x88\x87R" +
		"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbU\x04\x07\x00\x00\x00\x86R.", int64(7)},
	{"numpy 1.x array", npArray("i2", "K\x02\x85", "\x89", sbb("\x01\x00\xff\xff"), "."),
		&NDArray{DType: "int16", Shape: []int{2}, Data: le(int16(1), int16(-1))}},
	{"numpy Fortran flag as int", npArray("u1", "K\x02K\x01\x86", "K\x01", sbb("\x01\x02"), "."),
		&NDArray{DType: "uint8", Shape: []int{2, 1}, Fortran: true, Data: []byte{1, 2}}},
	{"numpy object array", npArray("O8", "K\x02\x85", "\x89", "](K\x01N\x86\x8c\x01ae", "."),
		&NDArray{DType: "object", Shape: []int{2}, Objects: []any{Tuple{int64(1), nil}, "a"}}},
	{"numpy 0-d object array", npArray("O8", ")", "\x89", "]K\x05a", "."), int64(5)},
	{"numpy datetime unit in the type code", npArray("M8[25s]", "K\x01\x85", "\x89", sbb("\x01\x00\x00\x00\x00\x00\x00\x00"), "."),
		&NDArray{DType: "datetime64[25s]", Shape: []int{1}, Data: le(int64(1))}},
	{"numpy datetime unit with count 01", npArray("m8[01D]", "K\x01\x85", "\x89", sbb("\x01\x00\x00\x00\x00\x00\x00\x00"), "."),
		&NDArray{DType: "timedelta64[D]", Shape: []int{1}, Data: le(int64(1))}},
	{"numpy datetime unit generic", npArray("M8[generic]", "K\x01\x85", "\x89", sbb("\x01\x00\x00\x00\x00\x00\x00\x00"), "."),
		&NDArray{DType: "datetime64", Shape: []int{1}, Data: le(int64(1))}},
}

func TestUnmarshalHandwritten(t *testing.T) {
	for _, tt := range handwrittenTests {
		got, err := Unmarshal([]byte(tt.data))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if d := diff(got, tt.want); d != "" {
			t.Errorf("%s: %s", tt.name, d)
		}
	}
}
