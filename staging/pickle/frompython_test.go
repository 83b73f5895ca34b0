package pickle

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
)

// pyPicklesScript pickles every value of cases with protocols 0 to 5 and
// writes them as records: "p<protocol>/<case>", then the pickle. It also
// writes "keys/p<protocol>", a list of one-entry dicts with keys of many
// types, and "keystrs", the JSON list of Python's str() of those keys.
const pyPicklesScript = pyRecordHelpers + `
import collections, datetime, decimal, json, math, pickle
import numpy as np

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

class MyList(list):
    pass

class MyDict(dict):
    pass

class KW:
    def __init__(self, a, b=0):
        self.a, self.b = a, b
    def __getnewargs_ex__(self):
        return (self.a,), {'b': self.b}

shared = [1, 2]
cases = {
    'none': None, 'true': True, 'false': False,
    'int_0': 0, 'int_255': 255, 'int_256': 256, 'int_65536': 65536, 'int_neg1': -1,
    'int_min32': -2**31, 'int_max32p1': 2**31, 'int_max64': 2**63 - 1, 'int_min64': -2**63,
    'int_2_64': 2**64, 'int_neg_big': -2**100 + 7, 'int_huge': 3**2000,
    'float_1_5': 1.5, 'float_neg0': -0.0, 'float_big': 1e300, 'float_tiny': 5e-324,
    'float_nan': math.nan, 'float_inf': math.inf, 'float_ninf': -math.inf, 'float_0_1': 0.1,
    'float_int': 3.0, 'float_1e20': 1e20, 'float_1e21': 1e21, 'float_1e-6': 1e-6, 'float_1.5e-7': 1.5e-7,
    'complex': 1 - 2.5j,
    'str_empty': '', 'str_ascii': 'hello', 'str_unicode': 'h\xe9llo \u65e5\u672c \U0001F389',
    'str_escapes': 'a\\b\nc\rd\x00e\x1af\\u0041\\U00000042\\\\u0043',
    'str_surrogate': 'x\ud800y', 'str_long': 'ab' * 200,
    'bytes_empty': b'', 'bytes_all': bytes(range(256)), 'bytearray': bytearray(b'xy\x00\xff'),
    'list_empty': [], 'list_nested': [1, 'a', None, [2.5, [3]]], 'list_big': list(range(2500)),
    'list_shared': [shared, shared],
    'tuple_0': (), 'tuple_1': (1,), 'tuple_2': (1, 'b'), 'tuple_3': (1, 2, 3),
    'tuple_5': (1, 2, 3, 4, (5,)),
    'dict_empty': {}, 'dict_order': {'b': 1, 'a': 2, 'c': 3},
    'dict_nested': {'x': {'y': [1, {'z': None}]}, 'w': (1, 2)},
    'dict_keys': {1: 'int', (1, 'a'): 'tuple', None: 'none', 2.5: 'float', b'k': 'bytes',
                  frozenset({1}): 'fs', 1j: 'complex'},
    'dict_big': {'k%d' % i: i for i in range(1500)},
    'set_empty': set(), 'set_small': {1, 'a', (2, 3)}, 'set_big': set(range(2500)), 'set_ints': {3, 1, 2},
    'frozenset': frozenset({1, 'a'}), 'frozenset_empty': frozenset(),
    'ordereddict': collections.OrderedDict([('b', 1), ('a', [2])]),
    'defaultdict': collections.defaultdict(list, {'z': [1], 'y': []}),
    'np_f64_2x3': np.arange(6, dtype=np.float64).reshape(2, 3),
    'np_f32': np.array([1.5, -2.25, np.nan], dtype=np.float32),
    'np_f16': np.array([0.5, -1, 65504], dtype=np.float16),
    'np_i8': np.array([-128, 0, 127], dtype=np.int8),
    'np_i16': np.array([-32768, 32767], dtype=np.int16),
    'np_i32': np.array([-2**31, 2**31 - 1], dtype=np.int32),
    'np_i64': np.array([-2**63, 2**63 - 1], dtype=np.int64),
    'np_u8': np.array([0, 255], dtype=np.uint8),
    'np_u16': np.array([0, 65535], dtype=np.uint16),
    'np_u32': np.array([0, 2**32 - 1], dtype=np.uint32),
    'np_u64': np.array([0, 2**64 - 1], dtype=np.uint64),
    'np_bool': np.array([True, False, True]),
    'np_c64': np.array([1 + 2j, -0.5j], dtype=np.complex64),
    'np_c128': np.array([1 + 2j, -3 - 4.5j], dtype=np.complex128),
    'np_3d': np.arange(24, dtype=np.int16).reshape(2, 3, 4),
    'np_empty': np.zeros((0, 3), dtype=np.float64),
    'np_fortran': np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
    'np_transposed': np.arange(6, dtype=np.int64).reshape(2, 3).T,
    'np_strided': np.arange(10, dtype=np.int32)[::3],
    'np_strided_2d': np.arange(12, dtype=np.float64).reshape(3, 4)[:, 1:3],
    'np_be_i4': np.array([1, -2, 3], dtype='>i4'),
    'np_be_f8': np.array([1.5, -0.0], dtype='>f8'),
    'np_be_c16': np.array([1 + 2j], dtype='>c16'),
    'np_be_u2_2d': np.array([[1, 2], [3, 258]], dtype='>u2'),
    'np_be_str': np.array(['ab', 'c'], dtype='>U2'),
    'np_str': np.array(['a', 'bc\xe9']),
    'np_bytes': np.array([b'ab', b'c']),
    'np_datetime': np.array(['2020-01-01T00:00:00', '1970-01-01T00:00:01'], dtype='datetime64[ns]'),
    'np_timedelta': np.array([1, -2], dtype='timedelta64[25s]'),
    'np_object': np.array([1, 'a', None], dtype=object),
    'np_0d_f64': np.array(2.5), 'np_0d_i16': np.array(7, dtype=np.int16),
    'np_0d_bool': np.array(True), 'np_0d_c128': np.array(1 + 2j),
    'np_0d_be_i8': np.array(-5, dtype='>i8'), 'np_0d_str': np.array('hey'),
    'np_0d_object': np.array(None, dtype=object),
    'np_float64': np.float64(1.5), 'np_float32': np.float32(0.1), 'np_float16': np.float16(-2.5),
    'np_int32': np.int32(3), 'np_int8': np.int8(-7), 'np_int64_min': np.int64(-2**63),
    'np_uint64_max': np.uint64(2**64 - 1), 'np_uint8': np.uint8(200),
    'np_bool_': np.bool_(True), 'np_complex64': np.complex64(1 + 2j),
    'np_complex128': np.complex128(-1j), 'np_str_': np.str_('h\xe9'), 'np_bytes_': np.bytes_(b'ab'),
    'np_in_dict': {'arr': np.array([1, 2], dtype=np.uint8), 'scalar': np.float64(2.0)},
    'datetime': datetime.datetime(2024, 1, 2, 3, 4, 5),
    'decimal': decimal.Decimal('1.25'),
    'point': Point(1, 'two'),
    'mylist': MyList([1, 2]),
    'mydict': MyDict(a=1),
    'kw': KW(1, b=2),
    'func_ref': math.sqrt,
    'builtin_refs': [int, str, range, zip, collections.UserDict, ValueError, bytes],
    'objects_in_list': [Point(0, 0), datetime.date(2000, 1, 1)],
}

for proto in range(6):
    for name, v in cases.items():
        rec('p%d/%s' % (proto, name))
        rec(pickle.dumps(v, protocol=proto))

keys = [
    0, 1, -7, 2**70, -2**70, 1.5, 1.0, -0.0, 0.1, 1e16, 1e15, 1234567890123456.0, 123456789.0,
    1e-4, 1e-5, 2.5e-7, 1e22, 1.7976931348623157e308, 5e-324, math.inf, -math.inf, math.nan,
    True, False, None, (), (1,), (1, 2), ('a', b'b', None, 1.5), ((1, 2), (3,)), (1.0, 2.5e-7),
    'plain', "it's", 'quote"d', 'both\'"', 'tab\there', 'uni\xe9', '\x00\x7f', 'nl\n\r',
    ('\u200b', '\xa0', '\xad', '\x85', '\U0001F389', '\u65e5', '\\'), ("it's",), ('\ud800',),
    b'', b'bytes', b"it's", b'\x00\xff\x7f\t', b'\\', b'"\'',
    1j, 1 + 2j, -1.5 - 0j, complex(-0.0, 1), complex(0, -0.0), complex(1e16, math.nan), 2.5e-7j,
    frozenset(), frozenset({1, 2, 3}), frozenset({'a', 'b'}), (frozenset({2}),),
    np.float64(1.5), np.int64(3),
]
for proto in (0, 2, 5):
    rec('keys/p%d' % proto)
    rec(pickle.dumps([{k: 0} for k in keys], protocol=proto))
rec('keystrs')
rec(json.dumps([str(k) for k in keys]))
`

var pyPickles struct {
	sync.Mutex
	recs map[string][]byte
}

// pythonPickles returns the records of pyPicklesScript by name, running
// Python once for all the tests that use them.
func pythonPickles(t *testing.T) map[string][]byte {
	t.Helper()
	pyPickles.Lock()
	defer pyPickles.Unlock()
	if pyPickles.recs == nil {
		recs := parseRecords(t, runPython(t, pyPicklesScript, nil))
		if len(recs)%2 != 0 {
			t.Fatalf("Python wrote %d records, want name and pickle pairs", len(recs))
		}
		m := map[string][]byte{}
		for i := 0; i < len(recs); i += 2 {
			m[string(recs[i])] = recs[i+1]
		}
		pyPickles.recs = m
	}
	return pyPickles.recs
}

// pyCase is a value pyPicklesScript pickles and what Unmarshal must make
// of it.
type pyCase struct {
	name string
	want any
	// byProto overrides want for some protocols; a nil entry means the
	// case is not checked with that protocol.
	byProto map[int]any
}

func intRange(n int) []any {
	v := make([]any, n)
	for i := range v {
		v[i] = int64(i)
	}
	return v
}

func negZero() float64 { return math.Copysign(0, -1) }

func pyCases() []pyCase {
	nan32 := math.Float32frombits(0x7fc00000)
	bigDict := NewDict()
	for i := range 1500 {
		bigDict.Set(fmt.Sprintf("k%d", i), int64(i))
	}
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	negBig := new(big.Int).Lsh(big.NewInt(1), 100)
	negBig.Neg(negBig).Add(negBig, big.NewInt(7))
	shared := []any{int64(1), int64(2)}
	arr := func(dtype string, shape []int, data []byte) *NDArray {
		return &NDArray{DType: dtype, Shape: shape, Data: data}
	}
	obj := func(module, name string) *Object { return &Object{Module: module, Name: name} }
	return []pyCase{
		{name: "none", want: nil},
		{name: "true", want: true},
		{name: "false", want: false},
		{name: "int_0", want: int64(0)},
		{name: "int_255", want: int64(255)},
		{name: "int_256", want: int64(256)},
		{name: "int_65536", want: int64(65536)},
		{name: "int_neg1", want: int64(-1)},
		{name: "int_min32", want: int64(math.MinInt32)},
		{name: "int_max32p1", want: int64(math.MaxInt32 + 1)},
		{name: "int_max64", want: int64(math.MaxInt64)},
		{name: "int_min64", want: int64(math.MinInt64)},
		{name: "int_2_64", want: bigInt("0x1_0000_0000_0000_0000")},
		{name: "int_neg_big", want: negBig},
		{name: "int_huge", want: new(big.Int).Exp(big.NewInt(3), big.NewInt(2000), nil)},
		{name: "float_1_5", want: 1.5},
		{name: "float_neg0", want: negZero()},
		{name: "float_big", want: 1e300},
		{name: "float_tiny", want: 5e-324},
		{name: "float_nan", want: math.NaN()},
		{name: "float_inf", want: math.Inf(1)},
		{name: "float_ninf", want: math.Inf(-1)},
		{name: "float_0_1", want: 0.1},
		{name: "float_int", want: 3.0},
		{name: "float_1e20", want: 1e20},
		{name: "float_1e21", want: 1e21},
		{name: "float_1e-6", want: 1e-6},
		{name: "float_1.5e-7", want: 1.5e-7},
		{name: "complex", want: complex(1, -2.5)},
		{name: "str_empty", want: ""},
		{name: "str_ascii", want: "hello"},
		{name: "str_unicode", want: "h\u00e9llo \u65e5\u672c \U0001F389"},
		{name: "str_escapes", want: "a\\b\nc\rd\x00e\x1af\\u0041\\U00000042\\\\u0043"},
		{name: "str_surrogate", want: "x\xed\xa0\x80y"}, // U+D800 as Python's surrogatepass encodes it
		{name: "str_long", want: strings.Repeat("ab", 200)},
		{name: "bytes_empty", want: []byte{}},
		{name: "bytes_all", want: allBytes},
		{name: "bytearray", want: []byte("xy\x00\xff")},
		{name: "list_empty", want: []any{}},
		{name: "list_nested", want: []any{int64(1), "a", nil, []any{2.5, []any{int64(3)}}}},
		{name: "list_big", want: intRange(2500)},
		{name: "list_shared", want: []any{shared, shared}},
		{name: "tuple_0", want: Tuple{}},
		{name: "tuple_1", want: Tuple{int64(1)}},
		{name: "tuple_2", want: Tuple{int64(1), "b"}},
		{name: "tuple_3", want: Tuple{int64(1), int64(2), int64(3)}},
		{name: "tuple_5", want: Tuple{int64(1), int64(2), int64(3), int64(4), Tuple{int64(5)}}},
		{name: "dict_empty", want: NewDict()},
		{name: "dict_order", want: dict("b", int64(1), "a", int64(2), "c", int64(3))},
		{name: "dict_nested", want: dict("x", dict("y", []any{int64(1), dict("z", nil)}), "w", Tuple{int64(1), int64(2)})},
		{name: "dict_keys", want: dict(int64(1), "int", Tuple{int64(1), "a"}, "tuple", nil, "none", 2.5, "float",
			[]byte("k"), "bytes", Set{int64(1)}, "fs", complex(0, 1), "complex")},
		{name: "dict_big", want: bigDict},
		{name: "set_empty", want: Set{}},
		{name: "set_small", want: Set{int64(1), "a", Tuple{int64(2), int64(3)}}},
		{name: "set_big", want: Set(intRange(2500))},
		{name: "set_ints", want: Set{int64(1), int64(2), int64(3)}},
		{name: "frozenset", want: Set{int64(1), "a"}},
		{name: "frozenset_empty", want: Set{}},
		{name: "ordereddict", want: dict("b", int64(1), "a", []any{int64(2)})},
		{name: "defaultdict", want: dict("z", []any{int64(1)}, "y", []any{})},

		{name: "np_f64_2x3", want: arr("float64", []int{2, 3}, f64s(0, 1, 2, 3, 4, 5))},
		{name: "np_f32", want: arr("float32", []int{3}, le(float32(1.5), float32(-2.25), nan32))},
		{name: "np_f16", want: arr("float16", []int{3}, le(uint16(0x3800), uint16(0xbc00), uint16(0x7bff)))},
		{name: "np_i8", want: arr("int8", []int{3}, le(int8(-128), int8(0), int8(127)))},
		{name: "np_i16", want: arr("int16", []int{2}, le(int16(math.MinInt16), int16(math.MaxInt16)))},
		{name: "np_i32", want: arr("int32", []int{2}, le(int32(math.MinInt32), int32(math.MaxInt32)))},
		{name: "np_i64", want: arr("int64", []int{2}, le(int64(math.MinInt64), int64(math.MaxInt64)))},
		{name: "np_u8", want: arr("uint8", []int{2}, []byte{0, 255})},
		{name: "np_u16", want: arr("uint16", []int{2}, le(uint16(0), uint16(math.MaxUint16)))},
		{name: "np_u32", want: arr("uint32", []int{2}, le(uint32(0), uint32(math.MaxUint32)))},
		{name: "np_u64", want: arr("uint64", []int{2}, le(uint64(0), uint64(math.MaxUint64)))},
		{name: "np_bool", want: arr("bool", []int{3}, []byte{1, 0, 1})},
		{name: "np_c64", want: arr("complex64", []int{2}, le(float32(1), float32(2), float32(negZero()), float32(-0.5)))},
		{name: "np_c128", want: arr("complex128", []int{2}, f64s(1, 2, -3, -4.5))},
		{name: "np_3d", want: arr("int16", []int{2, 3, 4}, le(func() []int16 {
			v := make([]int16, 24)
			for i := range v {
				v[i] = int16(i)
			}
			return v
		}()))},
		{name: "np_empty", want: arr("float64", []int{0, 3}, []byte{})},
		{name: "np_fortran", want: &NDArray{DType: "int32", Shape: []int{2, 3}, Fortran: true,
			Data: le(int32(0), int32(3), int32(1), int32(4), int32(2), int32(5))}},
		{name: "np_transposed", want: &NDArray{DType: "int64", Shape: []int{3, 2}, Fortran: true,
			Data: le(int64(0), int64(1), int64(2), int64(3), int64(4), int64(5))}},
		{name: "np_strided", want: arr("int32", []int{4}, le(int32(0), int32(3), int32(6), int32(9)))},
		{name: "np_strided_2d", want: arr("float64", []int{3, 2}, f64s(1, 2, 5, 6, 9, 10))},
		{name: "np_be_i4", want: arr("int32", []int{3}, le(int32(1), int32(-2), int32(3)))},
		{name: "np_be_f8", want: arr("float64", []int{2}, f64s(1.5, negZero()))},
		{name: "np_be_c16", want: arr("complex128", []int{1}, f64s(1, 2))},
		{name: "np_be_u2_2d", want: arr("uint16", []int{2, 2}, le(uint16(1), uint16(2), uint16(3), uint16(258)))},
		{name: "np_be_str", want: arr("<U2", []int{2}, utf32(2, "ab", "c"))},
		{name: "np_str", want: arr("<U3", []int{2}, utf32(3, "a", "bc\u00e9"))},
		{name: "np_bytes", want: arr("|S2", []int{2}, []byte("abc\x00"))},
		{name: "np_datetime", want: arr("datetime64[ns]", []int{2}, le(int64(1577836800e9), int64(1e9)))},
		{name: "np_timedelta", want: arr("timedelta64[25s]", []int{2}, le(int64(1), int64(-2)))},
		{name: "np_object", want: &NDArray{DType: "object", Shape: []int{3}, Objects: []any{int64(1), "a", nil}}},
		{name: "np_0d_f64", want: 2.5},
		{name: "np_0d_i16", want: int64(7)},
		{name: "np_0d_bool", want: true},
		{name: "np_0d_c128", want: complex(1, 2)},
		{name: "np_0d_be_i8", want: int64(-5)},
		{name: "np_0d_str", want: "hey"},
		{name: "np_0d_object", want: nil},
		{name: "np_float64", want: 1.5},
		{name: "np_float32", want: float64(float32(0.1))},
		{name: "np_float16", want: -2.5},
		{name: "np_int32", want: int64(3)},
		{name: "np_int8", want: int64(-7)},
		{name: "np_int64_min", want: int64(math.MinInt64)},
		{name: "np_uint64_max", want: new(big.Int).SetUint64(math.MaxUint64)},
		{name: "np_uint8", want: int64(200)},
		{name: "np_bool_", want: true},
		{name: "np_complex64", want: complex(1, 2)},
		{name: "np_complex128", want: complex(negZero(), -1)},
		{name: "np_str_", want: "h\u00e9"},
		{name: "np_bytes_", want: []byte("ab")},
		{name: "np_in_dict", want: dict("arr", arr("uint8", []int{2}, []byte{1, 2}), "scalar", 2.0)},

		{name: "datetime", want: &Object{Module: "datetime", Name: "datetime",
			Args: []any{[]byte{0x07, 0xe8, 1, 2, 3, 4, 5, 0, 0, 0}}}},
		{name: "decimal", want: &Object{Module: "decimal", Name: "Decimal", Args: []any{"1.25"}}},
		{name: "point", want: &Object{Module: "__main__", Name: "Point", State: dict("x", int64(1), "y", "two")}},
		{
			name: "mylist",
			// Protocols 0 and 1 pass the items to copyreg._reconstructor;
			// later ones append them to the new object.
			want: &Object{Module: "__main__", Name: "MyList", ListItems: []any{int64(1), int64(2)}},
			byProto: map[int]any{
				0: &Object{Module: "__main__", Name: "MyList", Args: []any{[]any{int64(1), int64(2)}}},
				1: &Object{Module: "__main__", Name: "MyList", Args: []any{[]any{int64(1), int64(2)}}},
			},
		},
		{
			name: "mydict",
			want: &Object{Module: "__main__", Name: "MyDict", DictItems: dict("a", int64(1))},
			byProto: map[int]any{
				0: &Object{Module: "__main__", Name: "MyDict", Args: []any{dict("a", int64(1))}},
				1: &Object{Module: "__main__", Name: "MyDict", Args: []any{dict("a", int64(1))}},
			},
		},
		{
			name: "kw",
			want: &Object{Module: "__main__", Name: "KW", Args: []any{int64(1)}, Kwargs: dict("b", int64(2)),
				State: dict("a", int64(1), "b", int64(2))},
			byProto: map[int]any{
				// Protocols 0 and 1 ignore __getnewargs_ex__.
				0: &Object{Module: "__main__", Name: "KW", State: dict("a", int64(1), "b", int64(2))},
				1: &Object{Module: "__main__", Name: "KW", State: dict("a", int64(1), "b", int64(2))},
				// Protocols 2 and 3 call functools.partial(object.__new__,
				// KW, 1, b=2), which the package does not rebuild.
				2: nil,
				3: nil,
			},
		},
		{name: "func_ref", want: obj("math", "sqrt")},
		{name: "builtin_refs", want: []any{obj("builtins", "int"), obj("builtins", "str"), obj("builtins", "range"),
			obj("builtins", "zip"), obj("collections", "UserDict"), obj("builtins", "ValueError"), obj("builtins", "bytes")}},
		{name: "objects_in_list", want: []any{
			&Object{Module: "__main__", Name: "Point", State: dict("x", int64(0), "y", int64(0))},
			&Object{Module: "datetime", Name: "date", Args: []any{[]byte{0x07, 0xd0, 1, 1}}},
		}},
	}
}

// TestUnmarshalPythonPickles decodes what Python pickles with every
// protocol.
func TestUnmarshalPythonPickles(t *testing.T) {
	pickles := pythonPickles(t)
	cases := pyCases()
	checked, excluded := 0, 0
	for _, c := range cases {
		for proto := 0; proto <= 5; proto++ {
			want := c.want
			if w, ok := c.byProto[proto]; ok {
				if w == nil {
					excluded++
					continue
				}
				want = w
			}
			name := fmt.Sprintf("p%d/%s", proto, c.name)
			data, ok := pickles[name]
			if !ok {
				t.Errorf("%s: Python wrote no such pickle", name)
				continue
			}
			checked++
			got, err := Unmarshal(data)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if d := diff(got, want); d != "" {
				t.Errorf("%s: %s", name, d)
			}
		}
	}
	// Every Python case has an expectation, so none goes unchecked.
	names := map[string]bool{}
	for _, c := range cases {
		names[c.name] = true
	}
	for name := range pickles {
		if rest, ok := strings.CutPrefix(name, "p5/"); ok && !names[rest] {
			t.Errorf("Python case %s has no expectation", rest)
		}
	}
	if want := 6*len(cases) - excluded; checked != want || excluded > 2 {
		t.Errorf("checked %d pickles, want %d", checked, want)
	}
}

// TestUnmarshalSharedReferences checks that a value the pickle memoizes
// once and refers to twice decodes as one Go value: the decoder does not
// copy it.
func TestUnmarshalSharedReferences(t *testing.T) {
	for proto := 0; proto <= 5; proto++ {
		v, err := Unmarshal(pythonPickles(t)[fmt.Sprintf("p%d/list_shared", proto)])
		if err != nil {
			t.Fatal(err)
		}
		l := v.([]any)
		a, b := l[0].([]any), l[1].([]any)
		if &a[0] != &b[0] {
			t.Errorf("protocol %d: the shared list decoded as two copies", proto)
		}
	}
}

// TestToJSONDictKeysMatchPythonStr checks that ToJSON spells dict keys as
// Python's str() does, for keys of every hashable type.
func TestToJSONDictKeysMatchPythonStr(t *testing.T) {
	pickles := pythonPickles(t)
	var want []string
	if err := json.Unmarshal(pickles["keystrs"], &want); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []int{0, 2, 5} {
		v, err := Unmarshal(pickles[fmt.Sprintf("keys/p%d", proto)])
		if err != nil {
			t.Fatalf("protocol %d: %v", proto, err)
		}
		dicts := v.([]any)
		if len(dicts) != len(want) {
			t.Fatalf("protocol %d: %d dicts, want %d", proto, len(dicts), len(want))
		}
		for i, d := range dicts {
			var obj map[string]any
			text := jsonText(t, ToJSON(d))
			if err := json.Unmarshal([]byte(text), &obj); err != nil {
				t.Fatalf("protocol %d: %s: %v", proto, text, err)
			}
			keys := slices.Collect(maps.Keys(obj))
			if len(keys) != 1 || keys[0] != want[i] {
				t.Errorf("protocol %d: key %s renders as %q, Python's str() gives %q",
					proto, short(d.(*Dict).Keys()[0]), keys, want[i])
			}
		}
	}
}
