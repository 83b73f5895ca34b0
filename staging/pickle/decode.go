package pickle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Unmarshal decodes one pickle of any protocol from 0 to 5 into the values
// described in the package documentation. data must hold exactly one pickle:
// bytes after its STOP opcode are an error.
//
// Unmarshal runs no code and imports nothing: references to globals become
// *Object placeholders, except for the reconstructions of built-in and numpy
// types listed in the package documentation. Persistent IDs, extension codes
// and out-of-band buffers are not supported and fail with an error.
// Self-referencing values (a list that contains itself, an object whose state
// refers back to it) are rejected, so every value Unmarshal returns is a tree
// that can be walked without cycle checks.
func Unmarshal(data []byte) (any, error) {
	d := &decoder{
		data:    data,
		memo:    map[uint64]any{},
		globals: map[*Object]bool{},
		pending: map[*NDArray]bool{},
		work:    1<<20 + 32*len(data),
	}
	v, err := d.run()
	if err != nil {
		return nil, err
	}
	return d.finish(v)
}

// pyList is a list being decoded. Pickles memoize a list before filling
// it, so lists are shared by pointer until decoding ends, when they become
// []any.
type pyList struct{ items []any }

// pySet is a set being decoded; it becomes a Set when decoding ends.
type pySet struct {
	items []any
	seen  map[string]bool
}

// decoder is the pickle virtual machine.
type decoder struct {
	data  []byte
	pos   int // next byte to read
	op    int // offset of the opcode being executed
	stack []any
	marks []int // stack lengths at each MARK
	memo  map[uint64]any

	globals map[*Object]bool  // placeholders made by GLOBAL, INST and STACK_GLOBAL
	pending map[*NDArray]bool // arrays made by _reconstruct, awaiting BUILD
	work    int               // remaining budget for copying and hashing
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("pickle: %s: %s at offset %d", opName(d.data[d.op]), fmt.Sprintf(format, args...), d.op)
}

func (d *decoder) truncated(what string) error {
	return fmt.Errorf("pickle: truncated input at offset %d (%s needs %s, %d bytes left)",
		d.op, opName(d.data[d.op]), what, len(d.data)-d.pos)
}

// charge spends n units of the work budget, failing once it is exhausted.
// It bounds the time and memory that shared references can multiply.
func (d *decoder) charge(n int) error {
	d.work -= n
	if d.work < 0 {
		return d.errorf("input exceeds the decoding work limit")
	}
	return nil
}

// read consumes n bytes of input.
func (d *decoder) read(n uint64) ([]byte, error) {
	if n > uint64(len(d.data)-d.pos) {
		return nil, d.truncated(fmt.Sprintf("%d bytes", n))
	}
	b := d.data[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

// readUint consumes an n-byte little-endian unsigned integer.
func (d *decoder) readUint(n int) (uint64, error) {
	b, err := d.read(uint64(n))
	if err != nil {
		return 0, err
	}
	var u uint64
	for i := n - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	return u, nil
}

// readLine consumes a newline-terminated argument and returns it without
// the newline.
func (d *decoder) readLine() ([]byte, error) {
	i := bytes.IndexByte(d.data[d.pos:], '\n')
	if i < 0 {
		return nil, d.truncated("a newline-terminated argument")
	}
	line := d.data[d.pos : d.pos+i]
	d.pos += i + 1
	return line, nil
}

// readSized consumes an n-byte length followed by that many bytes.
func (d *decoder) readSized(n int) ([]byte, error) {
	size, err := d.readUint(n)
	if err != nil {
		return nil, err
	}
	return d.read(size)
}

func (d *decoder) push(v any) { d.stack = append(d.stack, v) }

// base is the stack index above the newest MARK: the items an opcode that
// pops may reach.
func (d *decoder) base() int {
	if n := len(d.marks); n > 0 {
		return d.marks[n-1]
	}
	return 0
}

func (d *decoder) pop() (any, error) {
	n := len(d.stack)
	if n <= d.base() {
		return nil, d.errorf("stack underflow")
	}
	v := d.stack[n-1]
	d.stack[n-1] = nil
	d.stack = d.stack[:n-1]
	return v, nil
}

func (d *decoder) top() (any, error) {
	if len(d.stack) <= d.base() {
		return nil, d.errorf("stack underflow")
	}
	return d.stack[len(d.stack)-1], nil
}

// popMark removes the newest MARK and returns the items pushed since.
func (d *decoder) popMark() ([]any, error) {
	if len(d.marks) == 0 {
		return nil, d.errorf("no MARK on the stack")
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := slices.Clone(d.stack[m:])
	clear(d.stack[m:])
	d.stack = d.stack[:m]
	return items, nil
}

func (d *decoder) popN(n int) ([]any, error) {
	if len(d.stack)-d.base() < n {
		return nil, d.errorf("stack underflow")
	}
	items := slices.Clone(d.stack[len(d.stack)-n:])
	clear(d.stack[len(d.stack)-n:])
	d.stack = d.stack[:len(d.stack)-n]
	return items, nil
}

// run executes opcodes up to STOP and returns the value left on the stack.
func (d *decoder) run() (any, error) {
	for d.pos < len(d.data) {
		d.op = d.pos
		op := d.data[d.pos]
		d.pos++
		if op == opStop {
			v, err := d.pop()
			if err != nil {
				return nil, err
			}
			if d.pos != len(d.data) {
				return nil, fmt.Errorf("pickle: %d bytes of trailing data after STOP at offset %d", len(d.data)-d.pos, d.op)
			}
			return v, nil
		}
		if err := d.step(op); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("pickle: truncated input at offset %d (no STOP opcode)", len(d.data))
}

// step executes one opcode other than STOP.
func (d *decoder) step(op byte) error {
	switch op {
	case opMark:
		d.marks = append(d.marks, len(d.stack))
	case opPop:
		if len(d.stack) > d.base() {
			_, err := d.pop()
			return err
		}
		_, err := d.popMark()
		return err
	case opPopMark:
		_, err := d.popMark()
		return err
	case opDup:
		v, err := d.top()
		if err != nil {
			return err
		}
		d.push(v)
	case opProto:
		b, err := d.read(1)
		if err != nil {
			return err
		}
		if b[0] > highestProtocol {
			return d.errorf("unsupported pickle protocol %d", b[0])
		}
	case opFrame:
		n, err := d.readUint(8)
		if err != nil {
			return err
		}
		if n > uint64(len(d.data)-d.pos) {
			return d.truncated(fmt.Sprintf("a frame of %d bytes", n))
		}
	case opStop:
		return d.errorf("unexpected STOP")

	case opNone:
		d.push(nil)
	case opNewTrue:
		d.push(true)
	case opNewFalse:
		d.push(false)
	case opInt, opLong, opBinInt, opBinInt1, opBinInt2, opLong1, opLong4:
		return d.loadInt(op)
	case opFloat:
		line, err := d.readLine()
		if err != nil {
			return err
		}
		f, err := parseFloat(string(line))
		if err != nil {
			return d.errorf("%v", err)
		}
		d.push(f)
	case opBinFloat:
		b, err := d.read(8)
		if err != nil {
			return err
		}
		d.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	case opString, opBinString, opShortBinString, opUnicode, opBinUnicode, opShortBinUnicode, opBinUnicode8:
		return d.loadString(op)
	case opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8:
		return d.loadBytes(op)

	case opEmptyTuple:
		d.push(Tuple{})
	case opTuple1, opTuple2, opTuple3:
		items, err := d.popN(int(op-opTuple1) + 1)
		if err != nil {
			return err
		}
		d.push(Tuple(items))
	case opTuple:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		d.push(Tuple(items))
	case opEmptyList:
		d.push(&pyList{})
	case opList:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		d.push(&pyList{items: items})
	case opAppend:
		v, err := d.pop()
		if err != nil {
			return err
		}
		return d.appendItems([]any{v})
	case opAppends:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.appendItems(items)
	case opEmptyDict:
		d.push(NewDict())
	case opDict:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		dict := NewDict()
		if err := d.setItems(dict, items); err != nil {
			return err
		}
		d.push(dict)
	case opSetItem:
		items, err := d.popN(2)
		if err != nil {
			return err
		}
		return d.setItemsOnTop(items)
	case opSetItems:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.setItemsOnTop(items)
	case opEmptySet:
		d.push(&pySet{})
	case opAddItems:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		t, err := d.top()
		if err != nil {
			return err
		}
		s, ok := t.(*pySet)
		if !ok {
			return d.errorf("cannot add items to %s", TypeName(t))
		}
		return d.addToSet(s, items)
	case opFrozenSet:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		s := &pySet{}
		if err := d.addToSet(s, items); err != nil {
			return err
		}
		d.push(Set(s.items))

	case opPut, opBinPut, opLongBinPut, opMemoize:
		return d.put(op)
	case opGet, opBinGet, opLongBinGet:
		return d.get(op)

	case opGlobal, opStackGlobal, opInst, opObj, opReduce, opNewObj, opNewObjEx, opBuild:
		return d.loadObject(op)

	case opPersID, opBinPersID:
		return d.errorf("persistent IDs are not supported")
	case opExt1, opExt2, opExt4:
		return d.errorf("extension registry codes are not supported")
	case opNextBuffer:
		return d.errorf("out-of-band buffers are not supported")
	case opReadOnlyBuffer:
		_, err := d.top()
		return err
	default:
		return fmt.Errorf("pickle: unknown opcode 0x%02x at offset %d", op, d.op)
	}
	return nil
}

func (d *decoder) put(op byte) error {
	var idx uint64
	var err error
	switch op {
	case opPut:
		var line []byte
		if line, err = d.readLine(); err == nil {
			idx, err = parseIndex(line)
			if err != nil {
				return d.errorf("%v", err)
			}
		}
	case opBinPut:
		idx, err = d.readUint(1)
	case opLongBinPut:
		idx, err = d.readUint(4)
	case opMemoize:
		idx = uint64(len(d.memo))
	}
	if err != nil {
		return err
	}
	v, err := d.top()
	if err != nil {
		return err
	}
	d.memo[idx] = v
	return nil
}

func (d *decoder) get(op byte) error {
	var idx uint64
	var err error
	switch op {
	case opGet:
		var line []byte
		if line, err = d.readLine(); err == nil {
			idx, err = parseIndex(line)
			if err != nil {
				return d.errorf("%v", err)
			}
		}
	case opBinGet:
		idx, err = d.readUint(1)
	case opLongBinGet:
		idx, err = d.readUint(4)
	}
	if err != nil {
		return err
	}
	v, ok := d.memo[idx]
	if !ok {
		return d.errorf("memo key %d not found", idx)
	}
	d.push(v)
	return nil
}

// appendItems implements APPEND and APPENDS on the list (or list-like
// object) on top of the stack.
func (d *decoder) appendItems(items []any) error {
	t, err := d.top()
	if err != nil {
		return err
	}
	switch t := t.(type) {
	case *pyList:
		t.items = append(t.items, items...)
	case *Object:
		t.ListItems = append(t.ListItems, items...)
	default:
		return d.errorf("cannot append to %s", TypeName(t))
	}
	return nil
}

// setItemsOnTop implements SETITEM and SETITEMS on the dict (or dict-like
// object) on top of the stack.
func (d *decoder) setItemsOnTop(items []any) error {
	t, err := d.top()
	if err != nil {
		return err
	}
	switch t := t.(type) {
	case *Dict:
		return d.setItems(t, items)
	case *Object:
		if t.DictItems == nil {
			t.DictItems = NewDict()
		}
		return d.setItems(t.DictItems, items)
	default:
		return d.errorf("cannot set items on %s", TypeName(t))
	}
}

// setItems sets alternating keys and values on dict.
func (d *decoder) setItems(dict *Dict, items []any) error {
	if len(items)%2 != 0 {
		return d.errorf("odd number of items for a dict")
	}
	for i := 0; i < len(items); i += 2 {
		h, err := d.hash(items[i], "dict key")
		if err != nil {
			return err
		}
		dict.setHashed(h, items[i], items[i+1])
	}
	return nil
}

// addToSet adds items to s, skipping those already in it.
func (d *decoder) addToSet(s *pySet, items []any) error {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	for _, it := range items {
		h, err := d.hash(it, "set element")
		if err != nil {
			return err
		}
		if !s.seen[h] {
			s.seen[h] = true
			s.items = append(s.items, it)
		}
	}
	return nil
}

// hash returns the canonical key of v, failing if Python could not hash it.
func (d *decoder) hash(v any, role string) (string, error) {
	h, hashable, ok := hashKeyLimit(v, d.work)
	if err := d.charge(len(h)); err != nil || !ok {
		return "", d.errorf("input exceeds the decoding work limit")
	}
	if !hashable {
		return "", d.errorf("unhashable %s: %s", role, TypeName(v))
	}
	return h, nil
}
