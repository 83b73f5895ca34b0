package pickle

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
)

// TestToJSONPythonPickles checks ToJSON's rendering of values Python
// pickled, with every protocol.
func TestToJSONPythonPickles(t *testing.T) {
	tests := []struct{ name, json string }{
		{"none", `null`},
		{"true", `true`},
		{"false", `false`},
		{"int_0", `0`},
		{"int_neg1", `-1`},
		{"int_max64", `9223372036854775807`},
		{"int_min64", `-9223372036854775808`},
		{"int_2_64", `18446744073709551616`},
		{"int_neg_big", `-1267650600228229401496703205369`},
		{"float_1_5", `1.5`},
		{"float_neg0", `-0.0`},
		{"float_int", `3.0`},
		{"float_0_1", `0.1`},
		{"float_1e20", `100000000000000000000.0`},
		{"float_1e21", `1e+21`},
		{"float_1e-6", `0.000001`},
		{"float_1.5e-7", `1.5e-7`},
		{"float_big", `1e+300`},
		{"float_tiny", `5e-324`},
		{"float_nan", `"NaN"`},
		{"float_inf", `"Infinity"`},
		{"float_ninf", `"-Infinity"`},
		{"complex", `{"complex": [1.0, -2.5]}`},
		{"str_empty", `""`},
		{"str_unicode", `"h\u00e9llo \u65e5\u672c \ud83c\udf89"`},
		{"str_escapes", `"a\\b\nc\rd\u0000e\u001af\\u0041\\U00000042\\\\u0043"`},
		{"bytes_empty", `{"bytes_base64": ""}`},
		{"bytearray", `{"bytes_base64": "eHkA/w=="}`},
		{"list_empty", `[]`},
		{"list_nested", `[1, "a", null, [2.5, [3]]]`},
		{"list_shared", `[[1, 2], [1, 2]]`},
		{"tuple_0", `[]`},
		{"tuple_1", `[1]`},
		{"tuple_5", `[1, 2, 3, 4, [5]]`},
		{"dict_empty", `{}`},
		{"dict_order", `{"b": 1, "a": 2, "c": 3}`},
		{"dict_nested", `{"x": {"y": [1, {"z": null}]}, "w": [1, 2]}`},
		{"dict_keys", `{"1": "int", "(1, 'a')": "tuple", "None": "none", "2.5": "float", "b'k'": "bytes",
			"frozenset({1})": "fs", "1j": "complex"}`},
		{"set_empty", `[]`},
		{"set_ints", `[1, 2, 3]`},
		{"frozenset_empty", `[]`},
		{"ordereddict", `{"b": 1, "a": [2]}`},
		{"defaultdict", `{"z": [1], "y": []}`},
		{"np_f64_2x3", `{"ndarray": {"dtype": "float64", "shape": [2, 3]}}`},
		{"np_3d", `{"ndarray": {"dtype": "int16", "shape": [2, 3, 4]}}`},
		{"np_empty", `{"ndarray": {"dtype": "float64", "shape": [0, 3]}}`},
		{"np_bool", `{"ndarray": {"dtype": "bool", "shape": [3]}}`},
		{"np_c64", `{"ndarray": {"dtype": "complex64", "shape": [2]}}`},
		{"np_fortran", `{"ndarray": {"dtype": "int32", "shape": [2, 3]}}`},
		{"np_be_i4", `{"ndarray": {"dtype": "int32", "shape": [3]}}`},
		{"np_str", `{"ndarray": {"dtype": "<U3", "shape": [2]}}`},
		{"np_bytes", `{"ndarray": {"dtype": "|S2", "shape": [2]}}`},
		{"np_datetime", `{"ndarray": {"dtype": "datetime64[ns]", "shape": [2]}}`},
		{"np_object", `{"ndarray": {"dtype": "object", "shape": [3]}}`},
		{"np_0d_f64", `2.5`},
		{"np_0d_i16", `7`},
		{"np_0d_bool", `true`},
		{"np_0d_c128", `{"complex": [1.0, 2.0]}`},
		{"np_0d_str", `"hey"`},
		{"np_0d_object", `null`},
		{"np_float64", `1.5`},
		{"np_float32", `0.10000000149011612`},
		{"np_float16", `-2.5`},
		{"np_int32", `3`},
		{"np_uint64_max", `18446744073709551615`},
		{"np_bool_", `true`},
		{"np_complex128", `{"complex": [-0.0, -1.0]}`},
		{"np_str_", `"h\u00e9"`},
		{"np_bytes_", `{"bytes_base64": "YWI="}`},
		{"np_in_dict", `{"arr": {"ndarray": {"dtype": "uint8", "shape": [2]}}, "scalar": 2.0}`},
		{"datetime", `{"pyobject": "datetime.datetime"}`},
		{"decimal", `{"pyobject": "decimal.Decimal"}`},
		{"point", `{"pyobject": "__main__.Point"}`},
		{"mylist", `{"pyobject": "__main__.MyList"}`},
		{"mydict", `{"pyobject": "__main__.MyDict"}`},
		{"func_ref", `{"pyobject": "math.sqrt"}`},
		{"builtin_refs", `[{"pyobject": "builtins.int"}, {"pyobject": "builtins.str"}, {"pyobject": "builtins.range"},
			{"pyobject": "builtins.zip"}, {"pyobject": "collections.UserDict"}, {"pyobject": "builtins.ValueError"},
			{"pyobject": "builtins.bytes"}]`},
		{"objects_in_list", `[{"pyobject": "__main__.Point"}, {"pyobject": "datetime.date"}]`},
	}
	pickles := pythonPickles(t)
	for _, tt := range tests {
		for proto := 0; proto <= 5; proto++ {
			name := fmt.Sprintf("p%d/%s", proto, tt.name)
			v, err := Unmarshal(pickles[name])
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if d := diffJSON(jsonText(t, ToJSON(v)), tt.json); d != "" {
				t.Errorf("%s:\n%s", name, d)
			}
		}
	}
	// Whatever Unmarshal returns, ToJSON makes a value encoding/json
	// accepts.
	for name, data := range pickles {
		if name == "keystrs" {
			continue // the JSON list of key strings, not a pickle
		}
		v, err := Unmarshal(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if text := jsonText(t, ToJSON(v)); !json.Valid([]byte(text)) {
			t.Errorf("%s: invalid JSON %s", name, text)
		}
	}
}

// TestToJSONFloats checks the spelling of floats, which must read back as
// floats and as the same value.
func TestToJSONFloats(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{0, `0.0`},
		{negZero(), `-0.0`},
		{1, `1.0`},
		{-2, `-2.0`},
		{0.1, `0.1`},
		{123456789, `123456789.0`},
		{1e20, `100000000000000000000.0`},
		{1e21, `1e+21`},
		{-1.5e300, `-1.5e+300`},
		{1e-6, `0.000001`},
		{1e-7, `1e-7`},
		{1.5e-10, `1.5e-10`},
		{5e-324, `5e-324`},
		{math.MaxFloat64, `1.7976931348623157e+308`},
		{math.NaN(), `"NaN"`},
		{math.Inf(1), `"Infinity"`},
		{math.Inf(-1), `"-Infinity"`},
	}
	for _, tt := range tests {
		got := jsonText(t, ToJSON(tt.f))
		if got != tt.want {
			t.Errorf("ToJSON(%v) = %s, want %s", tt.f, got, tt.want)
		}
		if math.IsNaN(tt.f) || math.IsInf(tt.f, 0) {
			continue
		}
		var back float64
		if err := json.Unmarshal([]byte(got), &back); err != nil || !sameFloat(back, tt.f) {
			t.Errorf("%s reads back as %v (%v), want %v", got, back, err, tt.f)
		}
	}
}

// TestToJSONGoValues checks ToJSON on the Go values Marshal accepts, which
// Unmarshal never returns.
func TestToJSONGoValues(t *testing.T) {
	type unknown struct{ A int }
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"int", 5, `5`},
		{"uint8", uint8(200), `200`},
		{"uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"named int", namedInt(-3), `-3`},
		{"float32", float32(0.5), `0.5`},
		{"complex64", complex64(complex(1, -1)), `{"complex": [1.0, -1.0]}`},
		{"named string", namedString("s"), `"s"`},
		{"map sorted", map[string]any{"b": 1, "a": []any{int8(2)}, "c": nil}, `{"a": [2], "b": 1, "c": null}`},
		{"big.Int small", big.NewInt(-4), `-4`},
		{"nil big.Int", (*big.Int)(nil), `null`},
		{"nil NDArray", (*NDArray)(nil), `null`},
		{"nil Object", (*Object)(nil), `null`},
		{"nil Dict", (*Dict)(nil), `{}`},
		{"0-d NDArray", &NDArray{DType: "int16", Shape: []int{}, Data: le(int16(-2))}, `-2`},
		{"NDArray nil shape", &NDArray{DType: "float64", Data: f64s(1)}, `1.0`},
		{"NDArray", &NDArray{DType: "float64", Shape: []int{1}, Data: f64s(1)},
			`{"ndarray": {"dtype": "float64", "shape": [1]}}`},
		{"Object", &Object{Module: "m", Name: "C", Args: []any{1}}, `{"pyobject": "m.C"}`},
		{"unknown type", unknown{A: 1}, `{"A": 1}`},
	}
	for _, tt := range tests {
		if d := diffJSON(jsonText(t, ToJSON(tt.v)), tt.want); d != "" {
			t.Errorf("%s:\n%s", tt.name, d)
		}
	}
}

// TestToJSONDepthLimit checks that ToJSON cuts values off below 10,000
// levels, rendering them as null, and keeps everything above.
func TestToJSONDepthLimit(t *testing.T) {
	nest := func(levels int) any {
		var v any = int64(1)
		for range levels {
			v = []any{v}
		}
		return v
	}
	for _, tt := range []struct {
		levels int
		leaf   string
	}{{maxDepth, "1"}, {maxDepth + 1, "null"}} {
		text := jsonText(t, ToJSON(nest(tt.levels)))
		want := strings.Repeat("[", tt.levels) + tt.leaf + strings.Repeat("]", tt.levels)
		if text != want {
			t.Errorf("%d levels: the innermost value renders as %s, want %s", tt.levels,
				strings.Trim(text, "[]"), tt.leaf)
		}
	}
}
