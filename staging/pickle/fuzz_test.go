package pickle

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
)

// maxFuzzInput bounds the inputs FuzzUnmarshal tries: large ones are slow
// and add little; the size limits are tested by TestUnmarshalMalformed.
const maxFuzzInput = 4096

// fuzzValues are values of every kind Marshal writes, whose pickles seed
// FuzzUnmarshal and TestUnmarshalTruncated.
func fuzzValues() []any {
	return []any{
		nil, true, false,
		int64(0), int64(255), int64(-1), int64(65536), int64(math.MinInt64), bigInt("0x1_0000_0000_0000_0000"),
		new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 2100)),
		1.5, negZero(), math.NaN(), math.Inf(-1), complex(1, -2),
		"", "h\u00e9llo \U0001F389", "x\xed\xa0\x80y", strings.Repeat("a", 300),
		[]byte{}, []byte{0, 255}, make([]byte, 300),
		[]any{}, []any{int64(1), "a", nil, []any{2.5}},
		Tuple{}, Tuple{int64(1)}, Tuple{int64(1), int64(2)}, Tuple{int64(1), int64(2), int64(3)},
		Tuple{int64(1), int64(2), int64(3), Tuple{}},
		NewDict(), dict("b", int64(1), "a", []any{dict("c", nil)}),
		dict(int64(1), "i", 2.5, "f", nil, "n", Tuple{int64(1), "t"}, "t", []byte("k"), "b", complex(0, 1), "c",
			Set{int64(1)}, "fs", math.NaN(), "nan"),
		Set{}, Set{int64(1), "a", Tuple{int64(2)}, Set{int64(3)}},
		&NDArray{DType: "float64", Shape: []int{2, 3}, Data: f64s(0, 1, 2, 3, 4, 5)},
		&NDArray{DType: "int32", Shape: []int{2, 2}, Fortran: true, Data: le(int32(1), int32(2), int32(3), int32(4))},
		&NDArray{DType: "bool", Shape: []int{0}, Data: []byte{}},
		&NDArray{DType: "complex64", Shape: []int{1}, Data: le(float32(1), float32(2))},
		&NDArray{DType: "float16", Shape: []int{1}, Data: le(uint16(0x3c00))},
		&NDArray{DType: "uint64", Shape: []int{}, Data: le(uint64(math.MaxUint64))},
		&NDArray{DType: "<U2", Shape: []int{1}, Data: utf32(2, "ab")},
		&NDArray{DType: "|S3", Shape: []int{1}, Data: []byte("abc")},
		&NDArray{DType: "|V2", Shape: []int{1}, Data: []byte("ab")},
		&NDArray{DType: "datetime64[25s]", Shape: []int{1}, Data: le(int64(1))},
		&NDArray{DType: "timedelta64", Shape: []int{1}, Data: le(int64(1))},
		&NDArray{DType: "object", Shape: []int{2}, Objects: []any{int64(1), []any{"a"}}},
		dict("params", dict("sigma", 1.5, "n", int64(3), "mode", "fast"), "out", []any{"a.vtk", "b.vtk"}),
	}
}

// pythonValue reports whether v holds only values Marshal writes: no
// *Object (which Marshal rejects) and no str that is not UTF-8 (which
// Python 2 str opcodes can produce).
func pythonValue(v any) bool {
	switch x := v.(type) {
	case *Object:
		return false
	case string:
		return validPyString(x)
	case []any:
		return allPythonValues(x)
	case Tuple:
		return allPythonValues(x)
	case Set:
		return allPythonValues(x)
	case *Dict:
		return allPythonValues(x.Keys()) && allPythonValues(x.Values())
	case *NDArray:
		return allPythonValues(x.Objects)
	}
	return true
}

func allPythonValues(items []any) bool {
	for _, it := range items {
		if !pythonValue(it) {
			return false
		}
	}
	return true
}

// FuzzUnmarshal checks that Unmarshal never panics; that it returns either
// a value or an error; that ToJSON renders what it returns as valid JSON;
// and that, unless the value holds what Marshal cannot write, Marshal
// writes a pickle that Unmarshal reads back as the same value, and writes
// that value again as the same pickle.
func FuzzUnmarshal(f *testing.F) {
	for _, v := range fuzzValues() {
		data, err := Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tt := range handwrittenTests {
		f.Add([]byte(tt.data))
	}
	for _, tt := range malformedTests {
		if len(tt.data) <= maxFuzzInput {
			f.Add([]byte(tt.data))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		v, err := Unmarshal(data)
		if err != nil {
			if v != nil {
				t.Fatalf("Unmarshal returned %s and an error", short(v))
			}
			if !strings.HasPrefix(err.Error(), "pickle: ") {
				t.Fatalf("error %q lacks the \"pickle: \" prefix", err)
			}
			return
		}
		text, err := json.Marshal(ToJSON(v))
		if err != nil {
			t.Fatalf("json.Marshal(ToJSON(%s)): %v", short(v), err)
		}
		if !json.Valid(text) {
			t.Fatalf("ToJSON(%s) renders as invalid JSON %s", short(v), text)
		}
		if !pythonValue(v) {
			return
		}
		again, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%s): %v", short(v), err)
		}
		back, err := Unmarshal(again)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(%s)): %v", short(v), err)
		}
		if d := diff(back, v); d != "" {
			t.Fatalf("Unmarshal(Marshal(v)) differs from v: %s", d)
		}
		if third, err := Marshal(back); err != nil || !bytes.Equal(third, again) {
			t.Fatalf("Marshal of the value read back gives %q (%v), want %q", third, err, again)
		}
	})
}
