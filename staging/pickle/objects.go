package pickle

import (
	"bytes"
	"fmt"
	"maps"
	"math/big"
	"slices"
)

// moduleAliases maps the Python 2 module names that protocols 0 to 2 use
// to their Python 3 names, as the unpickler's fix_imports does.
var moduleAliases = map[string]string{
	"__builtin__": "builtins",
	"copy_reg":    "copyreg",
	"exceptions":  "builtins",
}

// nameAliases maps the Python 2 names of globals that were renamed, not just
// moved, to their Python 3 names, as the unpickler's fix_imports does. Python
// 3 itself writes these names with protocols 0 to 2 (int as __builtin__.long,
// str as __builtin__.unicode, ...).
var nameAliases = map[[2]string][2]string{
	{"__builtin__", "basestring"}:    {"builtins", "str"},
	{"__builtin__", "intern"}:        {"sys", "intern"},
	{"__builtin__", "long"}:          {"builtins", "int"},
	{"__builtin__", "reduce"}:        {"functools", "reduce"},
	{"__builtin__", "unichr"}:        {"builtins", "chr"},
	{"__builtin__", "unicode"}:       {"builtins", "str"},
	{"__builtin__", "xrange"}:        {"builtins", "range"},
	{"itertools", "ifilter"}:         {"builtins", "filter"},
	{"itertools", "ifilterfalse"}:    {"itertools", "filterfalse"},
	{"itertools", "imap"}:            {"builtins", "map"},
	{"itertools", "izip"}:            {"builtins", "zip"},
	{"itertools", "izip_longest"}:    {"itertools", "zip_longest"},
	{"UserDict", "IterableUserDict"}: {"collections", "UserDict"},
	{"UserDict", "UserDict"}:         {"collections", "UserDict"},
	{"UserList", "UserList"}:         {"collections", "UserList"},
	{"UserString", "UserString"}:     {"collections", "UserString"},
}

// loadObject implements the opcodes that name globals, call them and set
// state on the results.
func (d *decoder) loadObject(op byte) error {
	var v any
	var err error
	switch op {
	case opGlobal:
		var mod, name []byte
		if mod, err = d.readLine(); err != nil {
			return err
		}
		if name, err = d.readLine(); err != nil {
			return err
		}
		v = d.global(string(mod), string(name))
	case opStackGlobal:
		var items []any
		if items, err = d.popN(2); err != nil {
			return err
		}
		mod, ok1 := items[0].(string)
		name, ok2 := items[1].(string)
		if !ok1 || !ok2 {
			return d.errorf("module and name must be str, not %s and %s", TypeName(items[0]), TypeName(items[1]))
		}
		v = d.global(mod, name)
	case opInst:
		var mod, name []byte
		if mod, err = d.readLine(); err != nil {
			return err
		}
		if name, err = d.readLine(); err != nil {
			return err
		}
		var args []any
		if args, err = d.popMark(); err != nil {
			return err
		}
		v, err = d.call(d.global(string(mod), string(name)), args, nil)
	case opObj:
		var items []any
		if items, err = d.popMark(); err != nil {
			return err
		}
		if len(items) == 0 {
			return d.errorf("missing class")
		}
		v, err = d.call(items[0], items[1:], nil)
	case opReduce, opNewObj:
		var items []any
		if items, err = d.popN(2); err != nil {
			return err
		}
		args, ok := items[1].(Tuple)
		if !ok {
			return d.errorf("arguments must be a tuple, not %s", TypeName(items[1]))
		}
		v, err = d.call(items[0], args, nil)
	case opNewObjEx:
		var items []any
		if items, err = d.popN(3); err != nil {
			return err
		}
		args, ok1 := items[1].(Tuple)
		kwargs, ok2 := items[2].(*Dict)
		if !ok1 || !ok2 {
			return d.errorf("arguments must be a tuple and a dict, not %s and %s", TypeName(items[1]), TypeName(items[2]))
		}
		v, err = d.call(items[0], args, kwargs)
	case opBuild:
		state, err := d.pop()
		if err != nil {
			return err
		}
		return d.build(state)
	}
	if err != nil {
		return err
	}
	d.push(v)
	return nil
}

// global returns a placeholder for the global module.name.
func (d *decoder) global(module, name string) *Object {
	if n, ok := nameAliases[[2]string{module, name}]; ok {
		module, name = n[0], n[1]
	} else if m, ok := moduleAliases[module]; ok {
		module = m
	}
	o := &Object{Module: module, Name: name}
	d.globals[o] = true
	return o
}

// call returns the result of calling fn(*args, **kwargs): a reconstructed
// value for the callables the package recognizes, an *Object otherwise.
func (d *decoder) call(fn any, args []any, kwargs *Dict) (any, error) {
	callee, ok := fn.(*Object)
	if !ok {
		return nil, d.errorf("%s is not callable", TypeName(fn))
	}
	if d.globals[callee] && kwargs.Len() == 0 {
		v, ok, err := d.reconstruct(callee.Module+"."+callee.Name, args)
		if ok || err != nil {
			return v, err
		}
	}
	return newObject(callee.Module, callee.Name, args, kwargs), nil
}

func newObject(module, name string, args []any, kwargs *Dict) *Object {
	o := &Object{Module: module, Name: name}
	if len(args) > 0 {
		o.Args = args
	}
	if kwargs.Len() > 0 {
		o.Kwargs = kwargs
	}
	return o
}

// reconstruct rebuilds the values that pickles create by calling
// well-known globals. It reports false when fn is not one of them or the
// arguments are not the ones the pickler writes, leaving the call to be
// recorded as an *Object.
func (d *decoder) reconstruct(fn string, args []any) (any, bool, error) {
	switch fn {
	case "builtins.set", "builtins.frozenset":
		s := &pySet{}
		if len(args) > 1 {
			return nil, false, nil
		}
		if len(args) == 1 {
			items, ok := iterable(args[0])
			if !ok {
				return nil, false, nil
			}
			if err := d.addToSet(s, items); err != nil {
				return nil, false, err
			}
		}
		if fn == "builtins.frozenset" {
			return Set(s.items), true, nil
		}
		return s, true, nil
	case "builtins.bytes", "builtins.bytearray":
		switch len(args) {
		case 0:
			return []byte{}, true, nil
		case 1:
			if b, ok := args[0].([]byte); ok {
				return bytes.Clone(b), true, d.charge(len(b))
			}
		case 2:
			return d.encode(args)
		}
	case "_codecs.encode":
		return d.encode(args)
	case "builtins.complex":
		return makeComplex(args)
	case "copyreg._reconstructor":
		if len(args) == 3 {
			cls, ok1 := args[0].(*Object)
			base, ok2 := args[1].(*Object)
			if ok1 && ok2 {
				o := &Object{Module: cls.Module, Name: cls.Name}
				if base.Module+"."+base.Name != "builtins.object" {
					o.Args = []any{args[2]}
				}
				return o, true, nil
			}
		}
	case "copyreg.__newobj__":
		if len(args) >= 1 {
			if cls, ok := args[0].(*Object); ok {
				return newObject(cls.Module, cls.Name, args[1:], nil), true, nil
			}
		}
	case "copyreg.__newobj_ex__":
		if len(args) == 3 {
			cls, ok1 := args[0].(*Object)
			a, ok2 := args[1].(Tuple)
			kw, ok3 := args[2].(*Dict)
			if ok1 && ok2 && ok3 {
				return newObject(cls.Module, cls.Name, a, kw), true, nil
			}
		}
	case "collections.OrderedDict", "collections.defaultdict":
		return d.makeDict(fn, args)
	default:
		return d.reconstructNumpy(fn, args)
	}
	return nil, false, nil
}

// encode implements _codecs.encode(str, encoding), which protocols 0 to 2
// use for bytes, and bytes(str, encoding).
func (d *decoder) encode(args []any) (any, bool, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, false, nil
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, false, nil
	}
	enc := "utf-8"
	if len(args) == 2 {
		if enc, ok = args[1].(string); !ok {
			return nil, false, nil
		}
	}
	if err := d.charge(len(s)); err != nil {
		return nil, false, err
	}
	switch enc {
	case "utf-8", "utf8", "UTF-8", "ascii":
		return []byte(s), true, nil
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1", "L1", "l1":
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xFF {
				return nil, false, d.errorf("cannot encode %U in %s", r, enc)
			}
			b = append(b, byte(r))
		}
		return b, true, nil
	}
	return nil, false, nil
}

// makeComplex implements complex(real, imag).
func makeComplex(args []any) (any, bool, error) {
	var parts [2]float64
	if len(args) > 2 {
		return nil, false, nil
	}
	for i, a := range args {
		f, ok := toFloat(a)
		if !ok {
			return nil, false, nil
		}
		parts[i] = f
	}
	return complex(parts[0], parts[1]), true, nil
}

// makeDict implements OrderedDict() and defaultdict(factory), with an
// optional initial mapping or sequence of pairs.
func (d *decoder) makeDict(fn string, args []any) (any, bool, error) {
	if fn == "collections.defaultdict" && len(args) > 0 {
		args = args[1:] // the default factory
	}
	dict := NewDict()
	switch len(args) {
	case 0:
		return dict, true, nil
	case 1:
		if src, ok := args[0].(*Dict); ok {
			if err := d.charge(src.Len()); err != nil {
				return nil, false, err
			}
			dict.keys = slices.Clone(src.keys)
			dict.vals = slices.Clone(src.vals)
			dict.index = maps.Clone(src.index)
			return dict, true, nil
		}
		pairs, ok := iterable(args[0])
		if !ok {
			return nil, false, nil
		}
		items := make([]any, 0, 2*len(pairs))
		for _, p := range pairs {
			kv, ok := iterable(p)
			if !ok || len(kv) != 2 {
				return nil, false, nil
			}
			items = append(items, kv...)
		}
		return dict, true, d.setItems(dict, items)
	}
	return nil, false, nil
}

// iterable returns the items of a list, tuple, set or dict (its keys).
func iterable(v any) ([]any, bool) {
	switch v := v.(type) {
	case *pyList:
		return v.items, true
	case []any:
		return v, true
	case Tuple:
		return v, true
	case *pySet:
		return v.items, true
	case Set:
		return v, true
	case *Dict:
		return v.keys, true
	}
	return nil, false
}

// build implements BUILD: setting state on the object on top of the stack.
func (d *decoder) build(state any) error {
	inst, err := d.top()
	if err != nil {
		return err
	}
	switch o := inst.(type) {
	case *NDArray:
		if !d.pending[o] {
			return d.errorf("numpy array already has its state")
		}
		delete(d.pending, o)
		if err := d.setArrayState(o, state); err != nil {
			return err
		}
		if v, ok := arrayScalar(o); ok {
			d.stack[len(d.stack)-1] = v
		}
	case *Object:
		o.State = state
	case *Dict, *pySet:
		// Attributes of an OrderedDict, defaultdict or set: not kept.
	default:
		return d.errorf("cannot set state on %s", TypeName(inst))
	}
	return nil
}

// toFloat converts a Python int or float to a float64.
func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	case *big.Int:
		f, _ := new(big.Float).SetInt(v).Float64()
		return f, true
	}
	return 0, false
}

// TypeName names the Python type of v for error messages ("dict",
// "numpy.ndarray", "module.Class"), or its Go type when it is not a value of
// the package's value model.
func TypeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case complex128:
		return "complex"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case Tuple:
		return "tuple"
	case *pyList, []any:
		return "list"
	case *Dict:
		return "dict"
	case *pySet, Set:
		return "set"
	case *NDArray:
		return "numpy.ndarray"
	case *Object:
		return v.Module + "." + v.Name
	}
	return fmt.Sprintf("%T", v)
}
