package pickle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"slices"
	"strconv"
)

// ToJSON converts a value returned by Unmarshal into one that
// encoding/json marshals, following these rules:
//
//	None                       null
//	bool, str                  true/false, string
//	int                        number (exact, also for *big.Int)
//	float                      number with a decimal point or exponent,
//	                           such as 1.0 or 1e+21; NaN, inf and -inf
//	                           become the strings "NaN", "Infinity" and
//	                           "-Infinity"
//	list, tuple, set           array
//	dict                       object, in insertion order; keys that are
//	                           not strings are spelled as Python's str()
//	                           spells them: 1 → "1", (1, 2) → "(1, 2)",
//	                           None → "None", True → "True"
//	bytes                      {"bytes_base64": "<standard base64>"}
//	complex                    {"complex": [re, im]}
//	numpy array                {"ndarray": {"dtype": "float64", "shape": [3, 2]}}
//	0-d array, numpy scalar    the plain value
//	any other object           {"pyobject": "module.Class"}
//
// It also accepts the Go values Marshal accepts (int, float32,
// map[string]any with sorted keys, ...); values of other Go types are
// returned unchanged. Values nested more than 10,000 levels deep, which
// Unmarshal never returns, are cut off and rendered as null.
func ToJSON(v any) any {
	return toJSON(v, 0)
}

func toJSON(v any, depth int) any {
	if depth > maxDepth {
		return nil
	}
	switch x := v.(type) {
	case nil, bool, string, int64:
		return x
	case float64:
		return jsonFloat(x)
	case *big.Int:
		if x == nil {
			return nil
		}
		return json.Number(x.String())
	case complex128:
		return map[string]any{"complex": []any{jsonFloat(real(x)), jsonFloat(imag(x))}}
	case []byte:
		return map[string]any{"bytes_base64": base64.StdEncoding.EncodeToString(x)}
	case Tuple:
		return jsonArray(x, depth)
	case []any:
		return jsonArray(x, depth)
	case Set:
		return jsonArray(x, depth)
	case *Dict:
		o := jsonObject{keys: make([]string, x.Len()), vals: make([]any, x.Len())}
		for i, k := range x.Keys() {
			o.keys[i] = pyStr(k)
			o.vals[i] = toJSON(x.vals[i], depth+1)
		}
		return o
	case map[string]any:
		o := jsonObject{}
		for k := range x {
			o.keys = append(o.keys, k)
		}
		slices.Sort(o.keys)
		for _, k := range o.keys {
			o.vals = append(o.vals, toJSON(x[k], depth+1))
		}
		return o
	case *NDArray:
		if x == nil {
			return nil
		}
		if s, ok := arrayScalar(x); ok {
			return toJSON(s, depth+1)
		}
		shape := slices.Clone(x.Shape)
		if shape == nil {
			shape = []int{}
		}
		return map[string]any{"ndarray": map[string]any{"dtype": x.DType, "shape": shape}}
	case *Object:
		if x == nil {
			return nil
		}
		return map[string]any{"pyobject": x.Module + "." + x.Name}
	}
	if s, ok := normalizeScalar(v); ok {
		return toJSON(s, depth)
	}
	return v
}

func jsonArray(items []any, depth int) []any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = toJSON(it, depth+1)
	}
	return out
}

// jsonFloat formats f as encoding/json does, but always with a decimal
// point or an exponent so that it reads back as a float, and with
// non-finite values as strings.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(nil, f, format, -1, 64)
	if format == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	if !bytes.ContainsAny(b, ".e") {
		b = append(b, ".0"...)
	}
	return json.Number(b)
}

// jsonObject is a JSON object that keeps its keys in order.
type jsonObject struct {
	keys []string
	vals []any
}

// MarshalJSON implements json.Marshaler.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
