package pickle

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// batchSize is how many items APPENDS, SETITEMS and ADDITEMS carry at
// most, as in CPython.
const batchSize = 1000

// Marshal encodes v as a protocol 4 pickle that Python 3.4 and later load
// with pickle.loads. It accepts:
//
//	nil                                  None
//	bool                                 bool
//	int, int8...int64, uint...uint64     int
//	*big.Int                             int
//	float32, float64                     float
//	complex64, complex128                complex
//	string (UTF-8)                       str
//	[]byte                               bytes
//	[]any, other slices and arrays       list
//	Tuple                                tuple
//	*Dict                                dict
//	map[string]any, other maps           dict, keys sorted
//	Set                                  set
//	*NDArray                             numpy.ndarray
//
// Named types with these underlying kinds are accepted too. Arrays are
// written as numpy pickles them with protocols 2 to 4 (through
// numpy.core.multiarray._reconstruct), which numpy 1.x and 2.x both load.
//
// Any other value (channels, functions, structs, pointers, *Object) is an
// error that names its Go type and its path from v, such as
// `pickle: cannot pickle chan int at ["params"][2]`. So are dict keys and
// set elements Python cannot hash, strings that are not UTF-8, arrays whose
// data does not match their shape and dtype, and values nested more than
// 10,000 levels deep (as cyclic values are).
func Marshal(v any) ([]byte, error) {
	e := &encoder{buf: []byte{opProto, 4}}
	if err := e.value(v); err != nil {
		return nil, err
	}
	return append(e.buf, opStop), nil
}

type encoder struct {
	buf    []byte
	path   []pathElem // where the value being encoded is, for errors
	hashed bool       // encoding a dict key or set element: sets must be frozensets
}

// pathElem is one step from a container to an item: a list index or a
// dict key.
type pathElem struct {
	key   any
	index int
	isKey bool
}

func (e *encoder) fail(format string, args ...any) error {
	msg := "pickle: " + fmt.Sprintf(format, args...)
	if len(e.path) > 0 {
		var b strings.Builder
		for _, p := range e.path {
			switch {
			case !p.isKey:
				fmt.Fprintf(&b, "[%d]", p.index)
			case isString(p.key):
				fmt.Fprintf(&b, "[%s]", strconv.Quote(p.key.(string)))
			default:
				fmt.Fprintf(&b, "[%s]", pyRepr(p.key))
			}
		}
		msg += " at " + b.String()
	}
	return fmt.Errorf("%s", msg)
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// item encodes v as the i-th item of the current container.
func (e *encoder) item(i int, v any) error {
	e.path = append(e.path, pathElem{index: i})
	err := e.value(v)
	e.path = e.path[:len(e.path)-1]
	return err
}

// entry encodes the value v of key k of the current dict.
func (e *encoder) entry(k, v any) error {
	e.path = append(e.path, pathElem{key: k, isKey: true})
	err := e.value(v)
	e.path = e.path[:len(e.path)-1]
	return err
}

func (e *encoder) value(v any) error {
	if len(e.path) > maxDepth {
		return e.fail("value nests deeper than %d levels (is it cyclic?)", maxDepth)
	}
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, opNone)
	case bool:
		if x {
			e.buf = append(e.buf, opNewTrue)
		} else {
			e.buf = append(e.buf, opNewFalse)
		}
	case int64:
		e.int(x)
	case int:
		e.int(int64(x))
	case float64:
		e.float(x)
	case string:
		return e.string(x)
	case []byte:
		e.bytes(x)
	case *big.Int:
		if x == nil {
			return e.fail("cannot pickle a nil *big.Int")
		}
		e.bigInt(x)
	case complex128:
		e.global("builtins", "complex")
		e.float(real(x))
		e.float(imag(x))
		e.buf = append(e.buf, opTuple2, opReduce)
	case Tuple:
		return e.tuple(x)
	case []any:
		return e.list(len(x), func(i int) any { return x[i] })
	case *Dict:
		if x == nil {
			e.buf = append(e.buf, opEmptyDict)
			return nil
		}
		return e.dict(x.keys, x.vals)
	case Set:
		if e.hashed {
			return e.frozenset(x)
		}
		return e.set(x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		ks, vs := make([]any, len(keys)), make([]any, len(keys))
		for i, k := range keys {
			ks[i], vs[i] = k, x[k]
		}
		return e.dict(ks, vs)
	case *NDArray:
		if x == nil {
			return e.fail("cannot pickle a nil *NDArray")
		}
		return e.array(x)
	case *Object:
		return e.fail("cannot pickle *pickle.Object %s.%s", x.Module, x.Name)
	default:
		return e.reflectValue(v)
	}
	return nil
}

// reflectValue encodes the values of other Go types that have a Python
// counterpart: named scalar types, slices, arrays and maps.
func (e *encoder) reflectValue(v any) error {
	if s, ok := normalizeScalar(v); ok {
		return e.value(s)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			e.bytes(b)
			return nil
		}
		return e.list(rv.Len(), func(i int) any { return rv.Index(i).Interface() })
	case reflect.Map:
		// Keys and values are read together: a nil or NaN key cannot be
		// looked up again.
		ks := make([]any, 0, rv.Len())
		vs := make([]any, 0, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			ks = append(ks, it.Key().Interface())
			vs = append(vs, it.Value().Interface())
		}
		sortKeys(ks, vs)
		return e.dict(ks, vs)
	}
	return e.fail("cannot pickle %T", v)
}

// sortKeys orders map keys, and their values with them, deterministically:
// None, then numbers by value, then strings, then anything else by
// canonical encoding.
func sortKeys(keys, vals []any) {
	norm := func(k any) any {
		if n, ok := normalizeScalar(k); ok {
			return n
		}
		return k
	}
	rank := func(k any) int {
		switch norm(k).(type) {
		case nil:
			return 0
		case bool, int64, *big.Int, float64:
			return 1
		case string:
			return 2
		}
		return 3
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		a, b := keys[i], keys[j]
		ra, rb := rank(a), rank(b)
		if ra != rb {
			return ra - rb
		}
		na, nb := norm(a), norm(b)
		switch ra {
		case 1:
			fa, _ := toFloat(na)
			fb, _ := toFloat(nb)
			if c := cmp.Compare(fa, fb); c != 0 { // NaN first, consistently
				return c
			}
		case 2:
			if c := strings.Compare(na.(string), nb.(string)); c != 0 {
				return c
			}
		}
		ha, _ := hashKey(a)
		hb, _ := hashKey(b)
		if c := strings.Compare(ha, hb); c != 0 {
			return c
		}
		return strings.Compare(fmt.Sprintf("%T", a), fmt.Sprintf("%T", b))
	})
	ks, vs := slices.Clone(keys), slices.Clone(vals)
	for to, from := range order {
		keys[to], vals[to] = ks[from], vs[from]
	}
}

func (e *encoder) int(i int64) {
	switch {
	case i >= 0 && i < 1<<8:
		e.buf = append(e.buf, opBinInt1, byte(i))
	case i >= 0 && i < 1<<16:
		e.buf = append(e.buf, opBinInt2, byte(i), byte(i>>8))
	case i >= math.MinInt32 && i <= math.MaxInt32:
		e.buf = append(e.buf, opBinInt)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(int32(i)))
	default:
		e.bigInt(big.NewInt(i))
	}
}

func (e *encoder) bigInt(x *big.Int) {
	if x.IsInt64() && x.Int64() >= math.MinInt32 && x.Int64() <= math.MaxInt32 {
		e.int(x.Int64())
		return
	}
	b := encodeLong(x)
	if len(b) < 256 {
		e.buf = append(e.buf, opLong1, byte(len(b)))
	} else {
		e.buf = append(e.buf, opLong4)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(b)))
	}
	e.buf = append(e.buf, b...)
}

// encodeLong returns x in the shortest little-endian two's complement form.
func encodeLong(x *big.Int) []byte {
	if x.Sign() == 0 {
		return nil
	}
	n := x.BitLen()/8 + 1
	var b []byte
	if x.Sign() > 0 {
		b = x.FillBytes(make([]byte, n))
	} else {
		t := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
		b = t.Add(t, x).FillBytes(make([]byte, n))
		if n > 1 && b[0] == 0xff && b[1]&0x80 != 0 {
			b = b[1:]
		}
	}
	slices.Reverse(b)
	return b
}

func (e *encoder) float(f float64) {
	e.buf = append(e.buf, opBinFloat)
	e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(f))
}

func (e *encoder) string(s string) error {
	if !validPyString(s) {
		return e.fail("string %s is not valid UTF-8", quoteShort(s))
	}
	e.sized(opShortBinUnicode, opBinUnicode, opBinUnicode8, s)
	return nil
}

func (e *encoder) bytes(b []byte) {
	e.sized(opShortBinBytes, opBinBytes, opBinBytes8, string(b))
}

// sized writes a length-prefixed string with the opcode for its size.
func (e *encoder) sized(op1, op4, op8 byte, s string) {
	switch n := uint64(len(s)); {
	case n < 1<<8:
		e.buf = append(e.buf, op1, byte(n))
	case n < 1<<32:
		e.buf = append(e.buf, op4)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(n))
	default:
		e.buf = append(e.buf, op8)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, n)
	}
	e.buf = append(e.buf, s...)
}

// global pushes the global module.name.
func (e *encoder) global(module, name string) {
	e.sized(opShortBinUnicode, opBinUnicode, opBinUnicode8, module)
	e.sized(opShortBinUnicode, opBinUnicode, opBinUnicode8, name)
	e.buf = append(e.buf, opStackGlobal)
}

func (e *encoder) tuple(t Tuple) error {
	if len(t) == 0 {
		e.buf = append(e.buf, opEmptyTuple)
		return nil
	}
	if len(t) > 3 {
		e.buf = append(e.buf, opMark)
	}
	for i, v := range t {
		if err := e.item(i, v); err != nil {
			return err
		}
	}
	if len(t) > 3 {
		e.buf = append(e.buf, opTuple)
	} else {
		e.buf = append(e.buf, opTuple1+byte(len(t)-1))
	}
	return nil
}

func (e *encoder) list(n int, at func(int) any) error {
	e.buf = append(e.buf, opEmptyList)
	return e.batches(n, opAppends, func(i int) error { return e.item(i, at(i)) })
}

func (e *encoder) set(s Set) error {
	for i, v := range s {
		if _, ok := hashKey(v); !ok {
			e.path = append(e.path, pathElem{index: i})
			err := e.fail("unhashable set element of type %s", TypeName(v))
			e.path = e.path[:len(e.path)-1]
			return err
		}
	}
	e.buf = append(e.buf, opEmptySet)
	return e.batches(len(s), opAddItems, func(i int) error {
		return e.hashable(func() error { return e.item(i, s[i]) })
	})
}

// frozenset writes a set that must be hashable, as Python pickles a
// frozenset. Its elements are known to be hashable.
func (e *encoder) frozenset(s Set) error {
	e.buf = append(e.buf, opMark)
	for i, v := range s {
		if err := e.item(i, v); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, opFrozenSet)
	return nil
}

// hashable runs encode for a dict key or set element, in which Python
// needs frozensets where the value has sets.
func (e *encoder) hashable(encode func() error) error {
	outer := e.hashed
	e.hashed = true
	err := encode()
	e.hashed = outer
	return err
}

func (e *encoder) dict(keys, vals []any) error {
	for _, k := range keys {
		if _, ok := hashKey(k); !ok {
			return e.fail("unhashable dict key of type %s", TypeName(k))
		}
	}
	e.buf = append(e.buf, opEmptyDict)
	return e.batches(len(keys), opSetItems, func(i int) error {
		e.path = append(e.path, pathElem{key: keys[i], isKey: true})
		err := e.hashable(func() error { return e.value(keys[i]) })
		e.path = e.path[:len(e.path)-1]
		if err != nil {
			return err
		}
		return e.entry(keys[i], vals[i])
	})
}

// batches writes n items in batches of MARK items... op.
func (e *encoder) batches(n int, op byte, item func(int) error) error {
	for start := 0; start < n; start += batchSize {
		end := min(start+batchSize, n)
		e.buf = append(e.buf, opMark)
		for i := start; i < end; i++ {
			if err := item(i); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, op)
	}
	return nil
}

// array writes a as numpy's ndarray.__reduce_ex__ does for protocols 2 to
// 4: _reconstruct(ndarray, (0,), b'b') followed by BUILD with the state
// (1, shape, dtype, is_fortran, data).
func (e *encoder) array(a *NDArray) error {
	t, order, err := parseDTypeName(a.DType)
	if err != nil {
		return e.fail("numpy array: %v", err)
	}
	if order == '>' {
		return e.fail("numpy array dtype %s is big-endian, but NDArray.Data is little-endian", quoteShort(a.DType))
	}
	n, ok := elementCount(a.Shape)
	if !ok || len(a.Shape) > maxDims {
		return e.fail("numpy array shape %v is invalid", a.Shape)
	}
	if t.kind == 'O' {
		if len(a.Objects) != n {
			return e.fail("object array of shape %v has %d objects, want %d", a.Shape, len(a.Objects), n)
		}
	} else if n > math.MaxInt/t.size || len(a.Data) != n*t.size {
		return e.fail("numpy array data is %d bytes, want %d elements of %d bytes for shape %v", len(a.Data), n, t.size, a.Shape)
	}

	e.global("numpy.core.multiarray", "_reconstruct")
	e.global("numpy", "ndarray")
	e.buf = append(e.buf, opBinInt1, 0, opTuple1)
	e.bytes([]byte("b"))
	e.buf = append(e.buf, opTuple3, opReduce, opMark)
	e.int(1)
	shape := make(Tuple, len(a.Shape))
	for i, s := range a.Shape {
		shape[i] = int64(s)
	}
	if err := e.tuple(shape); err != nil {
		return err
	}
	e.global("numpy", "dtype")
	e.sized(opShortBinUnicode, opBinUnicode, opBinUnicode8, t.descr())
	e.buf = append(e.buf, opNewFalse, opNewTrue, opTuple3, opReduce)
	if err := e.tuple(t.state()); err != nil {
		return err
	}
	e.buf = append(e.buf, opBuild)
	if err := e.value(a.Fortran); err != nil {
		return err
	}
	if t.kind == 'O' {
		if err := e.list(n, func(i int) any { return a.Objects[i] }); err != nil {
			return err
		}
	} else {
		e.bytes(a.Data)
	}
	e.buf = append(e.buf, opTuple, opBuild)
	return nil
}
