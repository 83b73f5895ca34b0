// Package pickle reads and writes Python pickles without Python.
//
// burst hands every task its input as a pickled dict on stdin and reads the
// task's output as a pickled dict from stdout. The CLI has to write the inputs
// (expanded from sweep specs) and report the outputs (in results.jsonl), so it
// speaks the format itself.
//
// Python values map to Go values as follows:
//
//	None                 nil
//	bool                 bool
//	int                  int64, or *big.Int when it does not fit
//	float                float64
//	str                  string
//	bytes, bytearray     []byte
//	list                 []any
//	tuple                Tuple
//	dict                 *Dict (insertion order kept)
//	OrderedDict          *Dict
//	defaultdict          *Dict (the default factory is dropped)
//	set, frozenset       Set
//	numpy.ndarray        *NDArray (0-d arrays decode to their scalar value)
//	numpy scalar         its value as int64 (*big.Int above MaxInt64),
//	                     float64, bool, complex128, string or []byte
//	complex              complex128
//	anything else        *Object (module, name, constructor args, state)
//
// Unmarshal never executes code: a reference to a global is recorded as an
// *Object, never resolved. It accepts protocols 0 to 5 and is hardened
// against hostile input: lengths are checked before allocating, values may
// nest at most 10,000 levels deep, self-referencing values are rejected, and
// the work and memory spent are bounded by a small multiple of the input size.
package pickle

import (
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
)

// maxDepth is how deeply values may nest, in both directions.
const maxDepth = 10000

// Tuple is a Python tuple.
type Tuple []any

// Set is a Python set or frozenset. Its elements are in pickle order.
type Set []any

// Dict is a Python dict. Keys keep their insertion order, as in Python.
//
// Keys compare as Python compares them: 1, 1.0, True and 1+0j are the same
// key, tuples and frozensets (Tuple and Set) compare by content, str and bytes
// never equal each other, and an *Object key is compared by identity. All NaN
// keys are the same key. Unhashable keys (lists, dicts, arrays) are accepted by
// Set and Get, compared by content, but Marshal rejects them and Unmarshal
// never produces them. Setting an existing key replaces its value and keeps
// the original key and position.
//
// The zero Dict is empty and ready to use.
type Dict struct {
	keys  []any
	vals  []any
	index map[string]int
}

// NewDict returns an empty dict.
func NewDict() *Dict {
	return &Dict{}
}

// Set sets d[k] = v, keeping the position of an existing key.
func (d *Dict) Set(k, v any) {
	h, _ := hashKey(k)
	d.setHashed(h, k, v)
}

// setHashed is Set for a key whose canonical encoding h is already known.
func (d *Dict) setHashed(h string, k, v any) {
	if i, ok := d.index[h]; ok {
		d.vals[i] = v
		return
	}
	if d.index == nil {
		d.index = map[string]int{}
	}
	d.index[h] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

// Get returns d[k] and whether it was present.
func (d *Dict) Get(k any) (any, bool) {
	if d == nil || len(d.keys) == 0 {
		return nil, false
	}
	h, _ := hashKey(k)
	i, ok := d.index[h]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// Keys returns the keys in insertion order. The slice must not be modified.
func (d *Dict) Keys() []any {
	if d == nil {
		return nil
	}
	return d.keys
}

// Values returns the values in the order of Keys. The slice must not be
// modified.
func (d *Dict) Values() []any {
	if d == nil {
		return nil
	}
	return d.vals
}

// Len returns the number of entries.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.keys)
}

// NDArray is a numpy array: its dtype as numpy spells it ("float64",
// "int32", "bool", "complex128", "<U5", "|S3", "object", "datetime64[ns]",
// ...), its shape, and its raw bytes in C order, or in Fortran order when
// Fortran is set.
//
// Data is always little-endian: Unmarshal byte-swaps big-endian arrays, so
// an array pickled with dtype '>i4' decodes as "int32". Arrays of dtype
// "object" have no Data; their elements are in Objects, in C order.
type NDArray struct {
	DType   string
	Shape   []int
	Fortran bool
	Data    []byte
	Objects []any
}

// Object is any Python object other than the built-in types above: the
// class's (or function's) module and name, the arguments its constructor was
// given, and the state set on it afterwards (nil when none). A reference to a
// class or function that is never called is an Object with no arguments.
//
// ListItems and DictItems hold the items a pickle appends or assigns to the
// object after constructing it, as it does for subclasses of list and dict.
type Object struct {
	Module    string
	Name      string
	Args      []any
	Kwargs    *Dict
	State     any
	ListItems []any
	DictItems *Dict
}

// hashKey returns the canonical encoding of k as a dict key or set element,
// such that keys Python considers equal get equal encodings, and whether k
// is hashable in Python.
func hashKey(k any) (string, bool) {
	h, hashable, _ := hashKeyLimit(k, math.MaxInt)
	return h, hashable
}

// hashKeyLimit is hashKey giving up, with ok false, once the encoding
// exceeds limit bytes: values with shared parts can be far larger than the
// pickle they came from.
func hashKeyLimit(k any, limit int) (h string, hashable, ok bool) {
	e := keyEncoder{hashable: true, limit: limit}
	e.add(k, 0)
	return string(e.buf), e.hashable, !e.over
}

// keyEncoder builds canonical key encodings. Every element is
// self-delimiting, so concatenations are unambiguous.
type keyEncoder struct {
	buf      []byte
	hashable bool
	limit    int
	over     bool
}

func (e *keyEncoder) add(k any, depth int) {
	if e.over || len(e.buf) > e.limit {
		e.over = true
		return
	}
	if depth > maxDepth {
		e.hashable = false
		e.buf = append(e.buf, '!')
		return
	}
	switch k := k.(type) {
	case nil:
		e.buf = append(e.buf, 'N')
	case bool:
		if k {
			e.int(1)
		} else {
			e.int(0)
		}
	case int64:
		e.int(k)
	case int:
		e.int(int64(k))
	case *big.Int:
		if k == nil {
			e.unhashable(k)
			return
		}
		if k.IsInt64() {
			e.int(k.Int64())
			return
		}
		e.buf = append(e.buf, 'i')
		e.buf = k.Append(e.buf, 10)
		e.buf = append(e.buf, ';')
	case float64:
		e.float(k)
	case complex128:
		e.complex(k)
	case string:
		e.bytes('s', k)
	case []byte:
		e.bytes('b', string(k))
	case Tuple:
		e.seq('t', k, depth)
	case Set:
		e.frozenset(k, depth)
	case *Object:
		e.buf = append(e.buf, 'o')
		e.buf = strconv.AppendUint(e.buf, uint64(reflect.ValueOf(k).Pointer()), 16)
		e.buf = append(e.buf, ';')
	case []any:
		e.hashable = false
		e.seq('l', k, depth)
	default:
		e.other(k, depth)
	}
}

func (e *keyEncoder) int(i int64) {
	e.buf = append(e.buf, 'i')
	e.buf = strconv.AppendInt(e.buf, i, 10)
	e.buf = append(e.buf, ';')
}

func (e *keyEncoder) float(f float64) {
	switch {
	case math.IsNaN(f):
		e.buf = append(e.buf, "fnan;"...)
	case math.IsInf(f, 0):
		e.buf = append(e.buf, 'f')
		e.buf = strconv.AppendFloat(e.buf, f, 'g', -1, 64)
		e.buf = append(e.buf, ';')
	case f == math.Trunc(f):
		if f >= -(1<<63) && f < 1<<63 {
			e.int(int64(f))
			return
		}
		i, _ := new(big.Float).SetFloat64(f).Int(nil)
		e.add(i, 0)
	default:
		e.buf = append(e.buf, 'f')
		e.buf = strconv.AppendFloat(e.buf, f, 'g', -1, 64)
		e.buf = append(e.buf, ';')
	}
}

func (e *keyEncoder) complex(c complex128) {
	if imag(c) == 0 {
		e.float(real(c))
		return
	}
	e.buf = append(e.buf, 'c')
	e.buf = strconv.AppendFloat(e.buf, real(c), 'g', -1, 64)
	e.buf = append(e.buf, ',')
	e.buf = strconv.AppendFloat(e.buf, imag(c), 'g', -1, 64)
	e.buf = append(e.buf, ';')
}

func (e *keyEncoder) bytes(tag byte, s string) {
	e.buf = append(e.buf, tag)
	e.buf = strconv.AppendInt(e.buf, int64(len(s)), 10)
	e.buf = append(e.buf, ':')
	e.buf = append(e.buf, s...)
}

func (e *keyEncoder) seq(tag byte, items []any, depth int) {
	e.buf = append(e.buf, tag)
	e.buf = strconv.AppendInt(e.buf, int64(len(items)), 10)
	e.buf = append(e.buf, ':')
	for _, it := range items {
		e.add(it, depth+1)
	}
}

// frozenset encodes a set independently of element order: the sorted
// encodings of its distinct elements.
func (e *keyEncoder) frozenset(items []any, depth int) {
	encs := make([]string, 0, len(items))
	seen := make(map[string]bool, len(items))
	used := 0
	for _, it := range items {
		sub := keyEncoder{hashable: true, limit: e.limit - len(e.buf) - used}
		sub.add(it, depth+1)
		if sub.over {
			e.over = true
			return
		}
		used += len(sub.buf)
		if !sub.hashable {
			e.hashable = false
		}
		if s := string(sub.buf); !seen[s] {
			seen[s] = true
			encs = append(encs, s)
		}
	}
	slices.Sort(encs)
	e.buf = append(e.buf, 'F')
	e.buf = strconv.AppendInt(e.buf, int64(len(encs)), 10)
	e.buf = append(e.buf, ':')
	for _, s := range encs {
		e.buf = append(e.buf, s...)
	}
}

// other encodes Go values outside the value model: numbers and strings of
// any Go kind canonically, everything else as unhashable, by identity where
// the value has one and by type otherwise.
func (e *keyEncoder) other(k any, depth int) {
	if n, ok := normalizeScalar(k); ok {
		e.add(n, depth)
		return
	}
	e.unhashable(k)
}

func (e *keyEncoder) unhashable(k any) {
	e.hashable = false
	e.buf = append(e.buf, 'u')
	rv := reflect.ValueOf(k)
	if !rv.IsValid() {
		e.buf = append(e.buf, ';')
		return
	}
	e.bytes('T', rv.Type().String())
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		e.buf = strconv.AppendUint(e.buf, uint64(rv.Pointer()), 16)
	}
	e.buf = append(e.buf, ';')
}

// normalizeScalar converts Go booleans, numbers and strings of any kind
// (int32, uint8, float32, named types, ...) to the value model's bool,
// int64, *big.Int, float64, complex128 and string.
func normalizeScalar(v any) (any, bool) {
	switch v := v.(type) {
	case nil, bool, int64, float64, complex128, string:
		return v, true
	case int:
		return int64(v), true
	case float32:
		return float64(v), true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u <= math.MaxInt64 {
			return int64(u), true
		}
		return new(big.Int).SetUint64(u), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	case reflect.Complex64, reflect.Complex128:
		return rv.Complex(), true
	case reflect.String:
		return rv.String(), true
	}
	return nil, false
}
