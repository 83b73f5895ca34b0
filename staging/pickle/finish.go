package pickle

import (
	"fmt"
	"math/big"
)

// finish turns the value left by the pickle machine into the value
// Unmarshal returns. It converts lists and sets under construction into
// []any and Set, and 0-d arrays into scalars, and it rejects values that
// refer to themselves, nest deeper than maxDepth, or expand, by sharing,
// into far more elements than the pickle holds bytes: such values would
// make any consumer that walks them run out of stack, time or memory.
func (d *decoder) finish(v any) (any, error) {
	f := &finisher{
		pending: d.pending,
		seen:    map[any]*node{},
		limit:   1<<20 + 64*int64(len(d.data)),
	}
	out, _, err := f.value(v, 0)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// size measures a value: how many elements walking it visits (counting
// shared parts every time, and bytes of data by eights) and how deeply it
// nests.
type size struct {
	elems  int64
	height int
}

func leaf(nbytes int) size { return size{elems: 1 + int64(nbytes)/8} }

// node is the state of a container that finish has reached.
type node struct {
	done  bool
	final any // for arrays, the array or its scalar value
	size
}

type finisher struct {
	pending map[*NDArray]bool
	seen    map[any]*node // keyed by pointer, or by &s[0] for slices
	limit   int64
}

// add accounts for a child of size c.
func (f *finisher) add(s *size, c size) error {
	s.elems += c.elems
	s.height = max(s.height, c.height+1)
	if s.elems > f.limit {
		return fmt.Errorf("pickle: value expands to more than %d elements through shared references", f.limit)
	}
	return nil
}

// enter starts on the container identified by key at the given depth. It
// returns the container's node and whether it is new, in which case the
// caller must fill it in.
func (f *finisher) enter(key any, depth int) (*node, bool, error) {
	if n, ok := f.seen[key]; ok {
		if !n.done {
			return nil, false, fmt.Errorf("pickle: value contains itself; self-referencing values are not supported")
		}
		if depth+n.height > maxDepth {
			return nil, false, fmt.Errorf("pickle: value nests deeper than %d levels", maxDepth)
		}
		return n, false, nil
	}
	if depth > maxDepth {
		return nil, false, fmt.Errorf("pickle: value nests deeper than %d levels", maxDepth)
	}
	n := &node{}
	f.seen[key] = n
	return n, true, nil
}

// value finishes v, found at the given depth, and returns its final form.
func (f *finisher) value(v any, depth int) (any, size, error) {
	if depth > maxDepth {
		// Checked for every value, not only for containers, so that no value
		// lies deeper than Marshal and ToJSON go, and shared parts (whose
		// height enter checks) count the same as unshared ones.
		return nil, size{}, fmt.Errorf("pickle: value nests deeper than %d levels", maxDepth)
	}
	switch x := v.(type) {
	case string:
		return x, leaf(len(x)), nil
	case []byte:
		return x, leaf(len(x)), nil
	case *big.Int:
		return x, leaf(len(x.Bits()) * 8), nil
	case *pyList:
		if len(x.items) == 0 {
			return []any{}, leaf(0), nil
		}
		s, err := f.slice(x.items, depth)
		return x.items, s, err
	case []any:
		s, err := f.slice(x, depth)
		return x, s, err
	case Tuple:
		s, err := f.slice(x, depth)
		return x, s, err
	case *pySet:
		if len(x.items) == 0 {
			return Set{}, leaf(0), nil
		}
		s, err := f.slice(x.items, depth)
		return Set(x.items), s, err
	case Set:
		s, err := f.slice(x, depth)
		return x, s, err
	case *Dict:
		s, err := f.dict(x, depth)
		return x, s, err
	case *Object:
		s, err := f.object(x, depth)
		return x, s, err
	case *NDArray:
		return f.array(x, depth)
	}
	return v, leaf(0), nil
}

// slice finishes the items of a list, tuple or set in place.
func (f *finisher) slice(items []any, depth int) (size, error) {
	if len(items) == 0 {
		return leaf(0), nil
	}
	n, fresh, err := f.enter(&items[0], depth)
	if err != nil || !fresh {
		return n.sizeOrZero(), err
	}
	s := leaf(0)
	for i := range items {
		v, c, err := f.value(items[i], depth+1)
		if err != nil {
			return size{}, err
		}
		items[i] = v
		if err := f.add(&s, c); err != nil {
			return size{}, err
		}
	}
	n.done, n.size = true, s
	return s, nil
}

func (f *finisher) dict(x *Dict, depth int) (size, error) {
	n, fresh, err := f.enter(x, depth)
	if err != nil || !fresh {
		return n.sizeOrZero(), err
	}
	s := leaf(0)
	for _, vals := range [][]any{x.keys, x.vals} {
		for i := range vals {
			v, c, err := f.value(vals[i], depth+1)
			if err != nil {
				return size{}, err
			}
			vals[i] = v
			if err := f.add(&s, c); err != nil {
				return size{}, err
			}
		}
	}
	n.done, n.size = true, s
	return s, nil
}

func (f *finisher) object(x *Object, depth int) (size, error) {
	n, fresh, err := f.enter(x, depth)
	if err != nil || !fresh {
		return n.sizeOrZero(), err
	}
	s := leaf(len(x.Module) + len(x.Name))
	add := func(c size, err error) error {
		if err != nil {
			return err
		}
		return f.add(&s, c)
	}
	if err := add(f.slice(x.Args, depth+1)); err != nil {
		return size{}, err
	}
	if err := add(f.slice(x.ListItems, depth+1)); err != nil {
		return size{}, err
	}
	state, c, err := f.value(x.State, depth+1)
	if err := add(c, err); err != nil {
		return size{}, err
	}
	x.State = state
	for _, dict := range []*Dict{x.Kwargs, x.DictItems} {
		if dict != nil {
			if err := add(f.dict(dict, depth+1)); err != nil {
				return size{}, err
			}
		}
	}
	n.done, n.size = true, s
	return s, nil
}

func (f *finisher) array(x *NDArray, depth int) (any, size, error) {
	n, fresh, err := f.enter(x, depth)
	if err != nil {
		return nil, size{}, err
	}
	if !fresh {
		return n.final, n.size, nil
	}
	if f.pending[x] {
		return nil, size{}, fmt.Errorf("pickle: numpy array was never given its contents (no BUILD)")
	}
	s := leaf(len(x.Data))
	c, err := f.slice(x.Objects, depth+1)
	if err == nil {
		err = f.add(&s, c)
	}
	if err != nil {
		return nil, size{}, err
	}
	n.final = x
	if v, ok := arrayScalar(x); ok {
		n.final = v
	}
	n.done, n.size = true, s
	return n.final, s, nil
}

func (n *node) sizeOrZero() size {
	if n == nil {
		return size{}
	}
	return n.size
}
