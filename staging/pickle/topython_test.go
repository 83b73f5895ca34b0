package pickle

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
)

// pyCheckScript reads records of (name, pickle, Python expression), loads
// each pickle and checks that it is exactly the value of the expression:
// same types, dict order, float signs and NaNs, array dtypes, byte orders,
// memory layouts and contents. For each it writes the name, "ok" or what
// differs, and the loaded value pickled again with protocols 2 and 5.
const pyCheckScript = pyRecordHelpers + `
import math, pickle
import numpy as np

def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if isinstance(a, (set, frozenset)):
        rest = list(b)
        for x in a:
            for i, y in enumerate(rest):
                if same(x, y):
                    del rest[i]
                    break
            else:
                return False
        return not rest
    if isinstance(a, np.ndarray):
        if (a.dtype != b.dtype or a.dtype.str != b.dtype.str or a.shape != b.shape
                or a.flags.c_contiguous != b.flags.c_contiguous
                or a.flags.f_contiguous != b.flags.f_contiguous):
            return False
        if a.dtype.kind == 'O':
            return same(a.ravel(order='K').tolist(), b.ravel(order='K').tolist())
        return a.tobytes(order='A') == b.tobytes(order='A')
    return a == b

def describe(v):
    if isinstance(v, np.ndarray):
        return 'ndarray(%r, dtype=%s, shape=%s, C=%s, F=%s)' % (
            v.tolist(), v.dtype.str, v.shape, v.flags.c_contiguous, v.flags.f_contiguous)
    return '%r (%s)' % (v, type(v).__name__)

ns = {'np': np, 'math': math, 'nan': math.nan, 'inf': math.inf}
recs = read_records(sys.stdin.buffer.read())
for i in range(0, len(recs), 3):
    name, data, expr = recs[i].decode(), recs[i + 1], recs[i + 2].decode()
    rec(name)
    try:
        got = pickle.loads(data)
    except Exception as e:
        rec('pickle.loads failed: %s: %s' % (type(e).__name__, e))
        rec(b'')
        rec(b'')
        continue
    want = eval(expr, ns)
    if same(got, want):
        rec('ok')
    else:
        rec('loaded %s, want %s' % (describe(got), describe(want)))
    rec(pickle.dumps(got, protocol=2))
    rec(pickle.dumps(got, protocol=5))
`

// goCase is a Go value, the Python expression for the value Python must
// load from its pickle, and the value Unmarshal must decode from Python's
// pickles of that, if it differs from the Go value.
type goCase struct {
	name string
	v    any
	py   string
	back any // nil: v itself
}

type (
	namedInt    int16
	namedString string
	namedBytes  []byte
)

// intBoundaries returns cases for the integers around ±2^k for the bit
// counts where the encodings change length.
func intBoundaries() []goCase {
	var cases []goCase
	for _, k := range []uint{7, 8, 15, 16, 31, 32, 39, 40, 47, 48, 55, 56, 63, 64, 71, 72, 127, 128, 2100} {
		p := new(big.Int).Lsh(big.NewInt(1), k)
		for _, delta := range []int64{-1, 0, 1} {
			for _, sign := range []int{1, -1} {
				x := new(big.Int).Add(p, big.NewInt(delta))
				if sign < 0 {
					x.Neg(x)
				}
				var back any = x
				if x.IsInt64() {
					back = x.Int64()
				}
				cases = append(cases, goCase{
					name: fmt.Sprintf("big_%d(2**%d%+d)", sign, k, delta),
					v:    x,
					py:   fmt.Sprintf("%d*(2**%d%+d)", sign, k, delta),
					back: back,
				})
				if x.IsInt64() {
					cases = append(cases, goCase{
						name: fmt.Sprintf("int64_%d(2**%d%+d)", sign, k, delta),
						v:    x.Int64(),
						py:   fmt.Sprintf("%d*(2**%d%+d)", sign, k, delta),
					})
				}
			}
		}
	}
	return cases
}

func goCases() []goCase {
	bigList := make([]any, 2500)
	bigSet := make(Set, 2500)
	for i := range bigList {
		bigList[i] = int64(i)
		bigSet[i] = int64(i)
	}
	bigDict := NewDict()
	for i := range 1500 {
		bigDict.Set(fmt.Sprintf("k%d", i), int64(i))
	}
	bytes300 := make([]byte, 300)
	for i := range bytes300 {
		bytes300[i] = byte(i)
	}
	arr := func(dtype string, shape []int, data []byte) *NDArray {
		return &NDArray{DType: dtype, Shape: shape, Data: data}
	}
	int16s := func(n int) []byte {
		v := make([]int16, n)
		for i := range v {
			v[i] = int16(i)
		}
		return le(v)
	}
	cases := []goCase{
		{name: "nil", v: nil, py: "None"},
		{name: "true", v: true, py: "True"},
		{name: "false", v: false, py: "False"},
		{name: "int", v: 7, py: "7", back: int64(7)},
		{name: "int_neg", v: -7, py: "-7", back: int64(-7)},
		{name: "int8", v: int8(-128), py: "-128", back: int64(-128)},
		{name: "uint16", v: uint16(65535), py: "65535", back: int64(65535)},
		{name: "uint64_max", v: uint64(math.MaxUint64), py: "2**64 - 1", back: new(big.Int).SetUint64(math.MaxUint64)},
		{name: "named_int", v: namedInt(-300), py: "-300", back: int64(-300)},
		{name: "float_0", v: 0.0, py: "0.0"},
		{name: "float_neg0", v: negZero(), py: "-0.0"},
		{name: "float", v: -2.75, py: "-2.75"},
		{name: "float_max", v: math.MaxFloat64, py: "1.7976931348623157e308"},
		{name: "float_denormal", v: 5e-324, py: "5e-324"},
		{name: "float_nan", v: math.NaN(), py: "nan"},
		{name: "float_inf", v: math.Inf(1), py: "inf"},
		{name: "float_ninf", v: math.Inf(-1), py: "-inf"},
		{name: "float32", v: float32(0.1), py: "0.10000000149011612", back: float64(float32(0.1))},
		{name: "complex", v: complex(1, -2), py: "complex(1, -2)"},
		{name: "complex_nan", v: complex(math.NaN(), negZero()), py: "complex(nan, -0.0)"},
		{name: "complex64", v: complex64(complex(0.5, 0.25)), py: "0.5+0.25j", back: complex(0.5, 0.25)},
		{name: "str_empty", v: "", py: "''"},
		{name: "str", v: "hello", py: "'hello'"},
		{name: "str_unicode", v: "h\u00e9llo \u65e5\u672c \U0001F389", py: `'h\xe9llo \u65e5\u672c \U0001F389'`},
		{name: "str_controls", v: "a\x00b\nc\\d'e\"", py: `'a\x00b\nc\\d\'e"'`},
		{name: "str_surrogate", v: "x\xed\xa0\x80y", py: `'x\ud800y'`},
		{name: "str_long", v: strings.Repeat("ab", 150), py: "'ab' * 150"},
		{name: "str_named", v: namedString("n"), py: "'n'", back: "n"},
		{name: "bytes_empty", v: []byte{}, py: "b''"},
		{name: "bytes", v: []byte{0, 1, 255}, py: `b'\x00\x01\xff'`},
		{name: "bytes_long", v: bytes300, py: "bytes(range(256)) + bytes(range(44))"},
		{name: "bytes_array", v: [3]byte{1, 2, 3}, py: `b'\x01\x02\x03'`, back: []byte{1, 2, 3}},
		{name: "bytes_named", v: namedBytes("xy"), py: "b'xy'", back: []byte("xy")},
		{name: "list_empty", v: []any{}, py: "[]"},
		{name: "list", v: []any{int64(1), "a", nil, []any{2.5}}, py: "[1, 'a', None, [2.5]]"},
		{name: "list_ints", v: []int{1, 2, 3}, py: "[1, 2, 3]", back: []any{int64(1), int64(2), int64(3)}},
		{name: "list_array", v: [2]string{"a", "b"}, py: "['a', 'b']", back: []any{"a", "b"}},
		{name: "list_bytes", v: [][]byte{{1}, {}}, py: `[b'\x01', b'']`, back: []any{[]byte{1}, []byte{}}},
		{name: "list_big", v: bigList, py: "list(range(2500))"},
		{name: "tuple_0", v: Tuple{}, py: "()"},
		{name: "tuple_1", v: Tuple{int64(1)}, py: "(1,)"},
		{name: "tuple_2", v: Tuple{int64(1), "b"}, py: "(1, 'b')"},
		{name: "tuple_3", v: Tuple{int64(1), int64(2), int64(3)}, py: "(1, 2, 3)"},
		{name: "tuple_4", v: Tuple{int64(1), int64(2), int64(3), Tuple{}}, py: "(1, 2, 3, ())"},
		{name: "dict_empty", v: NewDict(), py: "{}"},
		{name: "dict_nil", v: (*Dict)(nil), py: "{}", back: NewDict()},
		{name: "dict_order", v: dict("b", int64(1), "a", int64(2), "c", int64(3)), py: "{'b': 1, 'a': 2, 'c': 3}"},
		{name: "dict_nested", v: dict("x", dict("y", []any{int64(1), dict("z", nil)}), "w", Tuple{int64(1)}),
			py: "{'x': {'y': [1, {'z': None}]}, 'w': (1,)}"},
		{name: "dict_keys", v: dict(int64(1), "i", Tuple{int64(1), "a"}, "t", nil, "n", 2.5, "f", []byte("k"), "b",
			complex(0, 1), "c", true, "bool"),
			py:   "{1: 'bool', (1, 'a'): 't', None: 'n', 2.5: 'f', b'k': 'b', 1j: 'c'}",
			back: dict(int64(1), "bool", Tuple{int64(1), "a"}, "t", nil, "n", 2.5, "f", []byte("k"), "b", complex(0, 1), "c")},
		{name: "dict_frozenset_key", v: dict(Set{int64(1), int64(2)}, "v"), py: "{frozenset({1, 2}): 'v'}"},
		{name: "dict_frozenset_in_key", v: dict(Tuple{"t", Set{Set{}}}, "v"), py: "{('t', frozenset({frozenset()})): 'v'}"},
		{name: "dict_big", v: bigDict, py: "{'k%d' % i: i for i in range(1500)}"},
		{name: "map_string", v: map[string]any{"z": 1, "a": []any{}, "m": "x"}, py: "{'a': [], 'm': 'x', 'z': 1}",
			back: dict("a", []any{}, "m", "x", "z", int64(1))},
		{name: "map_int", v: map[int]string{3: "c", -1: "a", 2: "b"}, py: "{-1: 'a', 2: 'b', 3: 'c'}",
			back: dict(int64(-1), "a", int64(2), "b", int64(3), "c")},
		{name: "set_empty", v: Set{}, py: "set()"},
		{name: "set", v: Set{int64(1), "a", Tuple{int64(2), int64(3)}}, py: "{1, 'a', (2, 3)}"},
		{name: "set_of_frozensets", v: Set{Set{int64(1)}, Tuple{Set{int64(2)}}}, py: "{frozenset({1}), (frozenset({2}),)}"},
		{name: "set_big", v: bigSet, py: "set(range(2500))"},

		{name: "np_f64_2x3", v: arr("float64", []int{2, 3}, f64s(0, 1, 2, 3, 4, 5)), py: "np.arange(6.0).reshape(2, 3)"},
		{name: "np_f32", v: arr("float32", []int{3}, le(float32(1.5), float32(-2.25), float32(math.Inf(1)))),
			py: "np.array([1.5, -2.25, inf], dtype=np.float32)"},
		{name: "np_f16", v: arr("float16", []int{2}, le(uint16(0x3800), uint16(0xbc00))), py: "np.array([0.5, -1], dtype=np.float16)"},
		{name: "np_i8", v: arr("int8", []int{3}, le(int8(-128), int8(0), int8(127))), py: "np.array([-128, 0, 127], dtype=np.int8)"},
		{name: "np_i16", v: arr("int16", []int{2}, le(int16(-32768), int16(32767))), py: "np.array([-32768, 32767], dtype=np.int16)"},
		{name: "np_i32", v: arr("int32", []int{2}, le(int32(math.MinInt32), int32(7))), py: "np.array([-2**31, 7], dtype=np.int32)"},
		{name: "np_i64", v: arr("int64", []int{2}, le(int64(math.MinInt64), int64(math.MaxInt64))),
			py: "np.array([-2**63, 2**63 - 1], dtype=np.int64)"},
		{name: "np_u8", v: arr("uint8", []int{2}, []byte{0, 255}), py: "np.array([0, 255], dtype=np.uint8)"},
		{name: "np_u16", v: arr("uint16", []int{1}, le(uint16(65535))), py: "np.array([65535], dtype=np.uint16)"},
		{name: "np_u32", v: arr("uint32", []int{1}, le(uint32(math.MaxUint32))), py: "np.array([2**32 - 1], dtype=np.uint32)"},
		{name: "np_u64", v: arr("uint64", []int{1}, le(uint64(math.MaxUint64))), py: "np.array([2**64 - 1], dtype=np.uint64)"},
		{name: "np_bool", v: arr("bool", []int{3}, []byte{1, 0, 1}), py: "np.array([True, False, True])"},
		{name: "np_c64", v: arr("complex64", []int{1}, le(float32(1), float32(-2))), py: "np.array([1 - 2j], dtype=np.complex64)"},
		{name: "np_c128", v: arr("complex128", []int{2}, f64s(1, 2, -3, -4.5)), py: "np.array([1 + 2j, -3 - 4.5j])"},
		{name: "np_3d", v: arr("int16", []int{2, 3, 4}, int16s(24)), py: "np.arange(24, dtype=np.int16).reshape(2, 3, 4)"},
		{name: "np_empty", v: arr("float64", []int{0}, []byte{}), py: "np.zeros(0)"},
		{name: "np_empty_2d", v: arr("int32", []int{2, 0}, []byte{}), py: "np.zeros((2, 0), dtype=np.int32)"},
		{name: "np_fortran", v: &NDArray{DType: "int32", Shape: []int{2, 3}, Fortran: true,
			Data: le(int32(0), int32(3), int32(1), int32(4), int32(2), int32(5))},
			py: "np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3))"},
		{name: "np_fortran_3d", v: &NDArray{DType: "float64", Shape: []int{2, 2, 2}, Fortran: true,
			Data: f64s(0, 4, 2, 6, 1, 5, 3, 7)},
			py: "np.asfortranarray(np.arange(8.0).reshape(2, 2, 2))"},
		{name: "np_0d", v: arr("float64", []int{}, f64s(1.5)), py: "np.array(1.5)", back: 1.5},
		{name: "np_0d_int", v: arr("uint8", []int{}, []byte{200}), py: "np.array(200, dtype=np.uint8)", back: int64(200)},
		{name: "np_typecode", v: arr("<i4", []int{1}, le(int32(-1))), py: "np.array([-1], dtype=np.int32)",
			back: arr("int32", []int{1}, le(int32(-1)))},
		{name: "np_str", v: arr("<U3", []int{2}, utf32(3, "a", "bc\u00e9")), py: `np.array(['a', 'bc\xe9'])`},
		{name: "np_bytes", v: arr("|S2", []int{2}, []byte("abc\x00")), py: "np.array([b'ab', b'c'])"},
		{name: "np_void", v: arr("|V4", []int{1}, []byte("abcd")), py: "np.frombuffer(b'abcd', dtype='V4')"},
		{name: "np_datetime", v: arr("datetime64[ns]", []int{2}, le(int64(0), int64(1))),
			py: "np.array([0, 1], dtype='datetime64[ns]')"},
		{name: "np_datetime_generic", v: arr("datetime64", []int{1}, le(int64(math.MinInt64))),
			py: "np.array(['NaT'], dtype='datetime64')"},
		{name: "np_timedelta", v: arr("timedelta64[25s]", []int{2}, le(int64(1), int64(-2))),
			py: "np.array([1, -2], dtype='timedelta64[25s]')"},
		{name: "np_object", v: &NDArray{DType: "object", Shape: []int{3}, Objects: []any{int64(1), "a", nil}},
			py: "np.array([1, 'a', None], dtype=object)"},
		{name: "np_in_dict", v: dict("arr", arr("uint8", []int{2}, []byte{1, 2}), "n", int64(1)),
			py: "{'arr': np.array([1, 2], dtype=np.uint8), 'n': 1}"},
	}
	return append(cases, intBoundaries()...)
}

// TestMarshalPythonLoads has Python load what Marshal writes and check it
// is exactly the expected Python value, then decodes Python's own pickles
// of what it loaded.
func TestMarshalPythonLoads(t *testing.T) {
	cases := goCases()
	var in [][]byte
	for _, c := range cases {
		data, err := Marshal(c.v)
		if err != nil {
			t.Fatalf("%s: Marshal: %v", c.name, err)
		}
		in = append(in, []byte(c.name), data, []byte(c.py))
	}
	out := parseRecords(t, runPython(t, pyCheckScript, records(in...)))
	if len(out) != 4*len(cases) {
		t.Fatalf("Python wrote %d records for %d cases", len(out), len(cases))
	}
	for i, c := range cases {
		name, status, p2, p5 := string(out[4*i]), string(out[4*i+1]), out[4*i+2], out[4*i+3]
		if name != c.name {
			t.Fatalf("record %d is for %s, want %s", i, name, c.name)
		}
		if status != "ok" {
			t.Errorf("%s: %s", c.name, status)
		}
		back := c.back
		if back == nil {
			back = c.v
		}
		for proto, data := range map[int][]byte{2: p2, 5: p5} {
			if len(data) == 0 {
				continue // loading failed, reported above
			}
			got, err := Unmarshal(data)
			if err != nil {
				t.Errorf("%s: Python's protocol %d pickle: %v", c.name, proto, err)
				continue
			}
			if d := diff(got, back); d != "" {
				t.Errorf("%s: Python's protocol %d pickle: %s", c.name, proto, d)
			}
		}
	}
}

// TestMarshalUnmarshal checks that Unmarshal reads back what Marshal
// writes, without Python.
func TestMarshalUnmarshal(t *testing.T) {
	for _, c := range goCases() {
		data, err := Marshal(c.v)
		if err != nil {
			t.Errorf("%s: Marshal: %v", c.name, err)
			continue
		}
		got, err := Unmarshal(data)
		if err != nil {
			t.Errorf("%s: Unmarshal: %v", c.name, err)
			continue
		}
		back := c.back
		if back == nil {
			back = c.v
		}
		if d := diff(got, back); d != "" {
			t.Errorf("%s: %s", c.name, d)
		}
	}
}
