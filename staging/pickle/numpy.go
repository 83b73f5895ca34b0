package pickle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// maxDims is numpy's limit on the number of array dimensions.
const maxDims = 64

// Names under which numpy 1.x and 2.x pickle their reconstruction helpers.
var (
	numpyReconstruct = map[string]bool{
		"numpy.core.multiarray._reconstruct":         true,
		"numpy._core.multiarray._reconstruct":        true,
		"numpy.core._multiarray_umath._reconstruct":  true,
		"numpy._core._multiarray_umath._reconstruct": true,
	}
	numpyScalar = map[string]bool{
		"numpy.core.multiarray.scalar":         true,
		"numpy._core.multiarray.scalar":        true,
		"numpy.core._multiarray_umath.scalar":  true,
		"numpy._core._multiarray_umath.scalar": true,
	}
	numpyFromBuffer = map[string]bool{
		"numpy.core.numeric._frombuffer":  true,
		"numpy._core.numeric._frombuffer": true,
	}
)

// dtype is a numpy data type the package understands.
type dtype struct {
	kind byte   // numpy's kind letter: b i u f c U S V O M m
	size int    // bytes per element
	unit string // datetime64/timedelta64 unit such as "ns" or "25s"; "" if generic
}

// name spells the dtype as NDArray.DType does: numpy's dtype.name for
// fixed-size types, dtype.str for strings and raw bytes.
func (t dtype) name() string {
	switch t.kind {
	case 'b':
		return "bool"
	case 'i':
		return "int" + strconv.Itoa(8*t.size)
	case 'u':
		return "uint" + strconv.Itoa(8*t.size)
	case 'f':
		return "float" + strconv.Itoa(8*t.size)
	case 'c':
		return "complex" + strconv.Itoa(8*t.size)
	case 'O':
		return "object"
	case 'U':
		return "<U" + strconv.Itoa(t.size/4)
	case 'S':
		return "|S" + strconv.Itoa(t.size)
	case 'V':
		return "|V" + strconv.Itoa(t.size)
	case 'M', 'm':
		n := "datetime64"
		if t.kind == 'm' {
			n = "timedelta64"
		}
		if t.unit != "" {
			n += "[" + t.unit + "]"
		}
		return n
	}
	return "?"
}

// swapUnit is the size of the units whose bytes are reversed to change
// the byte order of data of this type, or 1 when byte order does not apply.
func (t dtype) swapUnit() int {
	switch t.kind {
	case 'i', 'u', 'f', 'M', 'm':
		return t.size
	case 'c':
		return t.size / 2
	case 'U':
		return 4
	}
	return 1
}

// check reports whether numpy has such a type.
func (t dtype) check() error {
	ok := false
	switch t.kind {
	case 'b':
		ok = t.size == 1
	case 'i', 'u':
		ok = t.size == 1 || t.size == 2 || t.size == 4 || t.size == 8
	case 'f':
		ok = t.size == 2 || t.size == 4 || t.size == 8 || t.size == 12 || t.size == 16
	case 'c':
		ok = t.size == 8 || t.size == 16 || t.size == 24 || t.size == 32
	case 'O':
		ok = t.size == 4 || t.size == 8
	case 'M', 'm':
		ok = t.size == 8
	case 'U':
		ok = t.size > 0 && t.size%4 == 0
	case 'S', 'V':
		ok = t.size > 0
	}
	if !ok {
		return fmt.Errorf("unsupported numpy dtype %c%d", t.kind, t.size)
	}
	return nil
}

// descr is the type code numpy's dtype.__reduce__ passes to numpy.dtype.
func (t dtype) descr() string {
	if t.kind == 'U' {
		return "U" + strconv.Itoa(t.size/4)
	}
	return string(t.kind) + strconv.Itoa(t.size)
}

// state is the dtype's __setstate__ argument, as numpy writes it for
// little-endian data.
func (t dtype) state() Tuple {
	order := "<"
	if t.swapUnit() == 1 {
		order = "|"
	}
	switch t.kind {
	case 'O':
		return Tuple{int64(3), order, nil, nil, nil, int64(-1), int64(-1), int64(63)}
	case 'U':
		return Tuple{int64(3), order, nil, nil, nil, int64(t.size), int64(4), int64(8)}
	case 'S', 'V':
		return Tuple{int64(3), order, nil, nil, nil, int64(t.size), int64(1), int64(0)}
	case 'M', 'm':
		unit, num := splitUnit(t.unit)
		meta := Tuple{nil, Tuple{[]byte(unit), num, int64(1), int64(1)}}
		return Tuple{int64(4), order, nil, nil, nil, int64(-1), int64(-1), int64(0), meta}
	}
	return Tuple{int64(3), order, nil, nil, nil, int64(-1), int64(-1), int64(0)}
}

// splitUnit splits a datetime unit such as "25s" into "s" and 25.
func splitUnit(u string) (string, int64) {
	if u == "" {
		return "generic", 1
	}
	i := strings.IndexFunc(u, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return u, 1
	}
	n, err := strconv.ParseInt(u[:i], 10, 64)
	if err != nil {
		return u, 1
	}
	return u[i:], n
}

// parseTypeCode parses a type code such as "f8", "<i4", "U5" (five
// characters), "|S3" or "M8[ns]" into a dtype and its byte order.
func parseTypeCode(s string) (dtype, byte, error) {
	orig := s
	order := byte('=')
	if s != "" && strings.IndexByte("<>|=", s[0]) >= 0 {
		order, s = s[0], s[1:]
	}
	var t dtype
	if i := strings.IndexByte(s, '['); i >= 0 && strings.HasSuffix(s, "]") {
		t.unit, s = s[i+1:len(s)-1], s[:i]
	}
	if s == "" {
		return t, 0, fmt.Errorf("invalid numpy dtype %s", quoteShort(orig))
	}
	t.kind = s[0]
	if t.kind == 'a' {
		t.kind = 'S'
	}
	if s == "?" {
		t.kind, s = 'b', "b1"
	}
	switch n, err := strconv.Atoi(s[1:]); {
	case s[1:] == "" && (t.kind == 'O' || t.kind == 'M' || t.kind == 'm'):
		t.size = 8
	case err != nil || n <= 0 || n > math.MaxInt32:
		return t, 0, fmt.Errorf("invalid numpy dtype %s", quoteShort(orig))
	case t.kind == 'U':
		t.size = 4 * n
	default:
		t.size = n
	}
	if t.unit != "" && t.kind != 'M' && t.kind != 'm' {
		return t, 0, fmt.Errorf("invalid numpy dtype %s", quoteShort(orig))
	}
	if t.unit != "" {
		// Spell the unit as it reads back from the metadata that Marshal
		// writes: "1s" and "01s" as "s", "generic" as none.
		unit, num := splitUnit(t.unit)
		t.unit = datetimeUnit(Tuple{nil, Tuple{unit, num}})
	}
	if order == '=' {
		order = '<'
	}
	return t, order, t.check()
}

// parseDTypeName parses an NDArray.DType: a name such as "float64",
// "bool", "object" or "datetime64[ns]", or a type code such as "<U5".
func parseDTypeName(name string) (dtype, byte, error) {
	base, unit := name, ""
	if i := strings.IndexByte(name, '['); i >= 0 && strings.HasSuffix(name, "]") {
		base, unit = name[:i], name[i+1:len(name)-1]
	}
	var t dtype
	switch base {
	case "bool":
		t = dtype{kind: 'b', size: 1}
	case "object":
		t = dtype{kind: 'O', size: 8}
	case "datetime64":
		t = dtype{kind: 'M', size: 8, unit: unit}
	case "timedelta64":
		t = dtype{kind: 'm', size: 8, unit: unit}
	default:
		for _, p := range []struct {
			prefix string
			kind   byte
		}{{"uint", 'u'}, {"int", 'i'}, {"float", 'f'}, {"complex", 'c'}} {
			bits, ok := strings.CutPrefix(base, p.prefix)
			if !ok {
				continue
			}
			n, err := strconv.Atoi(bits)
			if err != nil || n%8 != 0 || n <= 0 {
				break
			}
			t = dtype{kind: p.kind, size: n / 8}
		}
	}
	if t.kind == 0 || (unit != "" && t.kind != 'M' && t.kind != 'm') {
		return parseTypeCode(name)
	}
	order := byte('<')
	if t.swapUnit() == 1 {
		order = '|'
	}
	return t, order, t.check()
}

// reconstructNumpy rebuilds numpy arrays and scalars.
func (d *decoder) reconstructNumpy(fn string, args []any) (any, bool, error) {
	switch {
	case numpyReconstruct[fn]:
		// _reconstruct(subtype, shape, typecode) makes an empty array that
		// the following BUILD fills.
		if len(args) != 3 {
			return nil, false, nil
		}
		a := &NDArray{}
		d.pending[a] = true
		return a, true, nil
	case numpyFromBuffer[fn]:
		// _frombuffer(buffer, dtype, shape, order), used by protocol 5.
		if len(args) != 4 {
			return nil, false, nil
		}
		t, order, err := d.dtype(args[1])
		if err != nil {
			return nil, false, err
		}
		shape, err := d.shape(args[2])
		if err != nil {
			return nil, false, err
		}
		ord, _ := args[3].(string)
		a := &NDArray{}
		if err := d.fillArray(a, t, order, shape, ord == "F", args[0]); err != nil {
			return nil, false, err
		}
		if v, ok := arrayScalar(a); ok {
			return v, true, nil
		}
		return a, true, nil
	case numpyScalar[fn]:
		// scalar(dtype, data)
		if len(args) < 1 || len(args) > 2 {
			return nil, false, nil
		}
		t, order, err := d.dtype(args[0])
		if err != nil {
			return nil, false, err
		}
		var raw any
		if len(args) == 2 {
			raw = args[1]
		}
		if t.kind == 'O' {
			return raw, true, nil
		}
		a := &NDArray{}
		if err := d.fillArray(a, t, order, []int{}, false, raw); err != nil {
			return nil, false, err
		}
		if v, ok := arrayScalar(a); ok {
			return v, true, nil
		}
		return a, true, nil
	}
	return nil, false, nil
}

// setArrayState implements ndarray.__setstate__((version, shape, dtype,
// is_fortran, rawdata)) on an array made by _reconstruct.
func (d *decoder) setArrayState(a *NDArray, state any) error {
	st, ok := state.(Tuple)
	if ok && len(st) == 5 {
		st = st[1:] // the version
	}
	if !ok || len(st) != 4 {
		return d.errorf("invalid numpy array state %s", TypeName(state))
	}
	shape, err := d.shape(st[0])
	if err != nil {
		return err
	}
	t, order, err := d.dtype(st[1])
	if err != nil {
		return err
	}
	fortran, ok := st[2].(bool)
	if !ok {
		n, isInt := st[2].(int64)
		if !isInt {
			return d.errorf("invalid numpy array state: is_fortran is %s", TypeName(st[2]))
		}
		fortran = n != 0
	}
	return d.fillArray(a, t, order, shape, fortran, st[3])
}

// dtype interprets a numpy.dtype placeholder: the type code passed to
// numpy.dtype, with byte order, size and datetime unit from its state.
func (d *decoder) dtype(v any) (dtype, byte, error) {
	o, ok := v.(*Object)
	if !ok || o.Module != "numpy" || o.Name != "dtype" || len(o.Args) == 0 {
		return dtype{}, 0, d.errorf("expected a numpy dtype, got %s", TypeName(v))
	}
	code, ok := o.Args[0].(string)
	if !ok {
		return dtype{}, 0, d.errorf("invalid numpy dtype argument %s", TypeName(o.Args[0]))
	}
	st, _ := o.State.(Tuple)
	if len(st) >= 9 && (code == "M8" || code == "m8") {
		if unit := datetimeUnit(st[8]); unit != "" {
			code += "[" + unit + "]"
		}
	}
	t, order, err := parseTypeCode(code)
	if err != nil {
		return t, 0, d.errorf("%v", err)
	}
	if len(st) >= 7 {
		// The state's elsize is authoritative for strings and raw bytes.
		if es, ok := st[5].(int64); ok && es > 0 && es <= math.MaxInt32 && strings.IndexByte("USV", t.kind) >= 0 {
			t.size = int(es)
			if err := t.check(); err != nil {
				return t, 0, d.errorf("%v", err)
			}
		}
	}
	if len(st) >= 2 {
		if s, ok := st[1].(string); ok && len(s) == 1 && strings.Contains("<>|", s) {
			order = s[0]
		}
	}
	return t, order, nil
}

// datetimeUnit reads the unit from a datetime dtype's metadata, which is
// (metadata, (unit, num, den, events)).
func datetimeUnit(meta any) string {
	m, ok := meta.(Tuple)
	if !ok || len(m) != 2 {
		return ""
	}
	info, ok := m[1].(Tuple)
	if !ok || len(info) < 2 {
		return ""
	}
	var unit string
	switch u := info[0].(type) {
	case []byte:
		unit = string(u)
	case string:
		unit = u
	}
	num, _ := info[1].(int64)
	if unit == "" || unit == "generic" || strings.ContainsAny(unit, "[]") || len(unit) > 16 {
		return ""
	}
	if num > 1 {
		unit = strconv.FormatInt(num, 10) + unit
	}
	return unit
}

// shape reads an array shape: a tuple (or list) of non-negative ints.
func (d *decoder) shape(v any) ([]int, error) {
	if n, ok := v.(int64); ok {
		v = Tuple{n}
	}
	items, ok := iterable(v)
	if !ok || len(items) > maxDims {
		return nil, d.errorf("invalid numpy array shape %s", TypeName(v))
	}
	shape := make([]int, len(items))
	for i, it := range items {
		n, ok := it.(int64)
		if !ok || n < 0 || int64(int(n)) != n {
			return nil, d.errorf("invalid numpy array dimension %v", it)
		}
		shape[i] = int(n)
	}
	return shape, nil
}

// elementCount returns the number of elements of an array of the given
// shape, or false if it overflows.
func elementCount(shape []int) (int, bool) {
	n := 1
	for _, s := range shape {
		if s < 0 {
			return 0, false
		}
		if s != 0 && n > math.MaxInt64/s {
			return 0, false
		}
		n *= s
	}
	return n, true
}

// fillArray sets a's contents after checking that raw (bytes, or a list
// for object arrays) has the size that the shape and dtype call for.
// Big-endian data is converted to little-endian.
func (d *decoder) fillArray(a *NDArray, t dtype, order byte, shape []int, fortran bool, raw any) error {
	n, ok := elementCount(shape)
	if !ok {
		return d.errorf("numpy array shape %v is too large", shape)
	}
	a.DType, a.Shape, a.Fortran = t.name(), shape, fortran
	if t.kind == 'O' {
		items, ok := iterable(raw)
		if !ok || len(items) != n {
			return d.errorf("object array of shape %v needs a list of %d items, got %s", shape, n, TypeName(raw))
		}
		if err := d.charge(n); err != nil {
			return err
		}
		a.Objects = slices.Clone(items)
		return nil
	}
	var data []byte
	switch raw := raw.(type) {
	case []byte:
		data = raw
	case string: // Python 2's str
		data = []byte(raw)
	default:
		return d.errorf("numpy array data must be bytes, not %s", TypeName(raw))
	}
	if n > math.MaxInt64/t.size || len(data) != n*t.size {
		return d.errorf("numpy array data is %d bytes, want %d elements of %d bytes for shape %v", len(data), n, t.size, shape)
	}
	if err := d.charge(len(data)); err != nil {
		return err
	}
	data = bytes.Clone(data)
	if data == nil {
		data = []byte{}
	}
	if u := t.swapUnit(); order == '>' && u > 1 {
		for i := 0; i+u <= len(data); i += u {
			slices.Reverse(data[i : i+u])
		}
	}
	a.Data = data
	return nil
}

// arrayScalar returns the element of a 0-d array as a Go value, if its
// dtype has a Go counterpart.
func arrayScalar(a *NDArray) (any, bool) {
	if a == nil || len(a.Shape) != 0 {
		return nil, false
	}
	t, order, err := parseDTypeName(a.DType)
	if err != nil || order == '>' {
		return nil, false
	}
	if t.kind == 'O' {
		if len(a.Objects) != 1 {
			return nil, false
		}
		return a.Objects[0], true
	}
	if len(a.Data) != t.size {
		return nil, false
	}
	return scalarValue(t, a.Data)
}

// scalarValue converts one little-endian element to a Go value.
func scalarValue(t dtype, b []byte) (any, bool) {
	switch {
	case t.kind == 'b':
		return b[0] != 0, true
	case t.kind == 'i' && t.size <= 8:
		return decodeLong(b), true
	case t.kind == 'u' && t.size <= 8:
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u), true
		}
		return int64(u), true
	case t.kind == 'f' && t.size == 2:
		return halfToFloat(binary.LittleEndian.Uint16(b)), true
	case t.kind == 'f' && t.size == 4:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), true
	case t.kind == 'f' && t.size == 8:
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), true
	case t.kind == 'c' && t.size == 8:
		re := math.Float32frombits(binary.LittleEndian.Uint32(b))
		im := math.Float32frombits(binary.LittleEndian.Uint32(b[4:]))
		return complex(float64(re), float64(im)), true
	case t.kind == 'c' && t.size == 16:
		re := math.Float64frombits(binary.LittleEndian.Uint64(b))
		im := math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
		return complex(re, im), true
	case t.kind == 'U':
		return decodeUTF32(b), true
	case t.kind == 'S':
		return bytes.Clone(bytes.TrimRight(b, "\x00")), true
	}
	return nil, false
}

// decodeUTF32 decodes numpy's fixed-width little-endian UTF-32 strings,
// dropping the trailing NULs that pad them.
func decodeUTF32(b []byte) string {
	out := make([]byte, 0, len(b)/4)
	for i := 0; i+4 <= len(b); i += 4 {
		r := binary.LittleEndian.Uint32(b[i:])
		if r > 0x10FFFF {
			r = 0xFFFD
		}
		out = appendWTF8(out, rune(r))
	}
	return string(bytes.TrimRight(out, "\x00"))
}

// halfToFloat converts an IEEE 754 half-precision value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1F
	frac := float64(h & 0x3FF)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1F:
		if frac != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}
