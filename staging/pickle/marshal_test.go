package pickle

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
)

func TestMarshalErrors(t *testing.T) {
	x := 1
	cyclicList := []any{nil}
	cyclicList[0] = cyclicList
	cyclicDict := NewDict()
	cyclicDict.Set("self", cyclicDict)
	tests := []struct {
		name string
		v    any
		err  string // the whole message when exact, else a part of it
		full bool
	}{
		{"chan in a dict", map[string]any{"params": []any{1, 2, make(chan int)}},
			`pickle: cannot pickle chan int at ["params"][2]`, true},
		{"func under a non-string key", dict(int64(1), Tuple{"a", func() {}}), `pickle: cannot pickle func() at [1][1]`, true},
		{"struct", struct{ A int }{1}, `pickle: cannot pickle struct { A int }`, true},
		{"pointer", &x, `pickle: cannot pickle *int`, true},
		{"Object", []any{&Object{Module: "m", Name: "C"}}, `pickle: cannot pickle *pickle.Object m.C at [0]`, true},
		{"nil big.Int", (*big.Int)(nil), "nil *big.Int", false},
		{"nil NDArray", (*NDArray)(nil), "nil *NDArray", false},
		{"invalid UTF-8", []any{"ok", "a\xffb"}, `pickle: string "a\xffb" is not valid UTF-8 at [1]`, true},
		{"invalid UTF-8 key", dict("\xff", int64(1)), "is not valid UTF-8", false},
		{"lone continuation byte", "\xa0", "is not valid UTF-8", false},
		{"list key", dict([]any{int64(1)}, int64(2)), "unhashable dict key of type list", false},
		{"dict key", dict(NewDict(), int64(2)), "unhashable dict key of type dict", false},
		{"tuple key holding a list", dict(Tuple{[]any{}}, int64(2)), "unhashable dict key of type tuple", false},
		{"array key", dict(&NDArray{DType: "bool", Shape: []int{0}, Data: []byte{}}, int64(2)), "unhashable dict key", false},
		{"Go array key", map[[2]int]int{{1, 2}: 3}, "unhashable dict key of type [2]int", false},
		{"list in a set", Set{int64(1), []any{}}, `pickle: unhashable set element of type list at [1]`, true},
		{"unknown dtype", &NDArray{DType: "float7", Shape: []int{1}, Data: []byte{0}}, "invalid numpy dtype", false},
		{"big-endian dtype", &NDArray{DType: ">i4", Shape: []int{1}, Data: le(int32(1))}, "big-endian", false},
		{"negative dimension", &NDArray{DType: "int8", Shape: []int{-1}, Data: []byte{}}, "shape [-1] is invalid", false},
		{"65 dimensions", &NDArray{DType: "int8", Shape: make([]int, 65), Data: []byte{}}, "is invalid", false},
		{"overflowing shape", &NDArray{DType: "int8", Shape: []int{1 << 62, 1 << 62}, Data: []byte{}}, "is invalid", false},
		{"data too short", &NDArray{DType: "float64", Shape: []int{1}, Data: []byte{1, 2, 3}},
			"numpy array data is 3 bytes, want 1 elements of 8 bytes for shape [1]", false},
		{"data for too many elements", &NDArray{DType: "float64", Shape: []int{1 << 60}, Data: []byte{}}, "numpy array data is 0 bytes", false},
		{"too few objects", &NDArray{DType: "object", Shape: []int{2}, Objects: []any{1}}, "has 1 objects, want 2", false},
		{"unpicklable object", &NDArray{DType: "object", Shape: []int{1}, Objects: []any{make(chan int)}},
			"cannot pickle chan int at [0]", false},
		{"cyclic list", cyclicList, "nests deeper than 10000 levels (is it cyclic?)", false},
		{"cyclic dict", cyclicDict, "nests deeper than 10000 levels (is it cyclic?)", false},
	}
	for _, tt := range tests {
		data, err := Marshal(tt.v)
		if err == nil {
			t.Errorf("%s: Marshal succeeded with %q", tt.name, data)
			continue
		}
		if data != nil {
			t.Errorf("%s: Marshal returned data with its error", tt.name)
		}
		msg := err.Error()
		if tt.full && msg != tt.err || !tt.full && (!strings.HasPrefix(msg, "pickle: ") || !strings.Contains(msg, tt.err)) {
			t.Errorf("%s: error %.300q, want %q", tt.name, msg, tt.err)
		}
	}
}

// TestMarshalMapKeys checks that Go maps are written with their keys in a
// fixed order: None, numbers by value, strings, then anything else.
func TestMarshalMapKeys(t *testing.T) {
	m := map[any]any{"b": 1, nil: 2, int64(10): 3, 2.5: 4, "a": 5, int8(-3): 6, complex(0, 1): 7, big.NewInt(7): 8}
	first, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := Marshal(m)
		if err != nil || !bytes.Equal(again, first) {
			t.Fatalf("Marshal of the same map gave %q (%v), then %q", first, err, again)
		}
	}
	v, err := Unmarshal(first)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{nil, int64(-3), 2.5, int64(7), int64(10), "a", "b", complex(0, 1)}
	if d := diff(v.(*Dict).Keys(), want); d != "" {
		t.Errorf("keys: %s", d)
	}
	ms := map[string]int{}
	for i := range 100 {
		ms[fmt.Sprint(i)] = i
	}
	a, _ := Marshal(ms)
	b, _ := Marshal(ms)
	if !bytes.Equal(a, b) {
		t.Errorf("Marshal of a map[string]int differs between calls")
	}

	// Keys that cannot be looked up again: nil in an interface and NaN.
	for _, m := range []any{map[any]any{nil: "n", "a": nil}, map[float64]string{math.NaN(): "nan", 1: "one"}} {
		data, err := Marshal(m)
		if err != nil {
			t.Errorf("Marshal(%v): %v", m, err)
			continue
		}
		v, err := Unmarshal(data)
		if err != nil {
			t.Fatal(err)
		}
		want := dict(nil, "n", "a", nil)
		if _, ok := m.(map[float64]string); ok {
			want = dict(math.NaN(), "nan", 1.0, "one")
		}
		if d := diff(v, want); d != "" {
			t.Errorf("Marshal(%v): %s", m, d)
		}
	}
}

// TestMarshalFormat checks the frame of what Marshal writes: a protocol 4
// header, one STOP at the end, and batches of at most 1000 items.
func TestMarshalFormat(t *testing.T) {
	data, err := Marshal(make([]any, 2500))
	if err != nil {
		t.Fatal(err)
	}
	batch := "(" + strings.Repeat("N", 1000) + "e"
	want := "\x80\x04]" + batch + batch + "(" + strings.Repeat("N", 500) + "e."
	if string(data) != want {
		t.Errorf("Marshal of 2500 Nones wrote %q, want %q", data, want)
	}
}

func TestDictKeys(t *testing.T) {
	var d Dict // the zero Dict is ready to use
	d.Set(int64(1), "int")
	d.Set(1.0, "float")
	d.Set(true, "bool")
	d.Set(complex(1, 0), "complex")
	d.Set(big.NewInt(1), "big")
	d.Set(uint8(1), "uint8")
	if d.Len() != 1 || d.Keys()[0] != int64(1) || d.Values()[0] != "uint8" {
		t.Errorf("1, 1.0, True, 1+0j are one key keeping the first spelling: got keys %v values %v", d.Keys(), d.Values())
	}
	for _, k := range []any{int64(1), 1.0, true, complex(1, 0), 1, float32(1)} {
		if v, ok := d.Get(k); !ok || v != "uint8" {
			t.Errorf("Get(%T %v) = %v, %v", k, k, v, ok)
		}
	}

	tests := []struct {
		name string
		a, b any
		same bool
	}{
		{"0 and -0.0", int64(0), negZero(), true},
		{"NaNs", math.NaN(), math.Copysign(math.NaN(), -1), true},
		{"2^64 as int and float", bigInt("0x1_0000_0000_0000_0000"), math.Ldexp(1, 64), true},
		{"2^63 as big.Int and uint64", bigInt("0x8000_0000_0000_0000"), uint64(1 << 63), true},
		{"int64 and big.Int", int64(math.MinInt64), big.NewInt(math.MinInt64), true},
		{"1.5 and 1", 1.5, int64(1), false},
		{"str and bytes", "a", []byte("a"), false},
		{"str and named str", "a", namedString("a"), true},
		{"tuples by content", Tuple{int64(1), "a"}, Tuple{1, "a"}, true},
		{"tuple and list", Tuple{int64(1)}, []any{int64(1)}, false},
		{"nested tuples", Tuple{Tuple{}}, Tuple{Tuple{}, Tuple{}}, false},
		{"sets in any order", Set{int64(1), int64(2)}, Set{int64(2), int64(1), 1.0}, true},
		{"set and tuple", Set{int64(1)}, Tuple{int64(1)}, false},
		{"None and 0", nil, int64(0), false},
		{"None and empty tuple", nil, Tuple{}, false},
		{"empty str and bytes", "", []byte{}, false},
		{"lists by content", []any{int64(1)}, []any{1.0}, true},
		{"objects by identity", &Object{Module: "m", Name: "C"}, &Object{Module: "m", Name: "C"}, false},
		{"length-prefixed strings", Tuple{"ab", "c"}, Tuple{"a", "bc"}, false},
	}
	for _, tt := range tests {
		d := NewDict()
		d.Set(tt.a, 1)
		d.Set(tt.b, 2)
		if same := d.Len() == 1; same != tt.same {
			t.Errorf("%s: the keys %s and %s are the same key: %v, want %v", tt.name, short(tt.a), short(tt.b), same, tt.same)
		}
		if v, ok := d.Get(tt.b); !ok || v != 2 {
			t.Errorf("%s: Get(%s) = %v, %v", tt.name, short(tt.b), v, ok)
		}
	}

	o := &Object{Module: "m", Name: "C"}
	d2 := dict(o, 1)
	if v, ok := d2.Get(o); !ok || v != 1 {
		t.Errorf("Get of the same *Object = %v, %v", v, ok)
	}

	// Setting an existing key replaces the value and keeps the position.
	d3 := dict("a", 1, "b", 2, "c", 3)
	d3.Set("a", 4)
	if d := diff(d3.Keys(), []any{"a", "b", "c"}); d != "" {
		t.Errorf("keys after replacing: %s", d)
	}
	if v, _ := d3.Get("a"); v != 4 {
		t.Errorf("d[a] = %v after replacing, want 4", v)
	}

	var nilDict *Dict
	if _, ok := nilDict.Get("a"); ok || nilDict.Len() != 0 || nilDict.Keys() != nil || nilDict.Values() != nil {
		t.Errorf("a nil *Dict is not empty")
	}
}
