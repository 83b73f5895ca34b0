// Package sweep parses parameter sweep specs written in YAML and expands them
// into the inputs of burst tasks: one params dict per task.
//
// A spec is a YAML mapping with one or more of these sections:
//
//	grid:        # every combination, first key varying slowest
//	  radius: [1, 2, 4]
//	  method: [fast, exact]
//	zip:         # lists of equal length, taken element by element
//	  image: [a.nrrd, b.nrrd]
//	  mask: [a-mask.nrrd, b-mask.nrrd]
//	list:        # explicit combinations
//	  - {sigma: 0.5}
//	  - {sigma: 1.0, iterations: 20}
//	constants:   # added to every task
//	  output_dir: /data/out
//	repeat: 3    # run each combination 3 times, with seed 0, 1, 2
//
// Sections combine as a product: every grid combination, with every zip row,
// with every list entry (an absent section counts as one empty combination);
// then the constants are added and each combination is repeated. The example
// gives 3*2 × 2 × 2 × 3 = 72 tasks. Task i (0-based) takes the combination of
// the mixed-radix digits of i: the grid varies slowest, then the zip rows,
// then the list entries, and the seed fastest, as itertools.product would.
//
// Each parameter name must come from one section only, and "seed" cannot be
// a parameter name when repeat is used. A task's params dict has its names
// in the order they first appear in the file, with "seed" last.
//
// Values become the Python values of the task's pickled input: null → None,
// booleans → bool, integers → int (int64 in Go, or *big.Int beyond it),
// floats → float (.nan, .inf and -.inf included), strings → str, lists →
// list ([]any), mappings → dict (*pickle.Dict, keys keeping their scalar
// type), !!binary → bytes ([]byte) and !!set → set (pickle.Set). Scalars are
// typed by the YAML 1.2 core schema as gopkg.in/yaml.v3 applies it: yes, no,
// on and off are strings, 1e3 is a float, 0o17, 0x1f and 017 are integers.
// Dates and other tags are errors. Anchors, aliases and merge keys ("<<")
// work; an alias shares its value rather than copying it.
//
// Errors are reported as *Error, with the line and dotted path of the
// offending entry.
package sweep

import (
	"fmt"
	"iter"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/slicerburst/burst/internal/typo"
	"github.com/slicerburst/burst/staging/pickle"
)

// DefaultMaxTasks is how many tasks Parse and Expand allow a spec to give.
const DefaultMaxTasks = 1_000_000

// SeedParam is the parameter that repeat adds to every task: 0..N-1.
const SeedParam = "seed"

// sectionList names the top-level keys of a spec, for messages.
const sectionList = "grid, zip, list, constants or repeat"

// sections are the top-level keys of a spec.
var sections = []string{"grid", "zip", "list", "constants", "repeat"}

// Task is the input of one task.
type Task struct {
	// ID is the task's zero-padded sequence number; see TaskID.
	ID string
	// Params maps parameter names (strings) to values, in spec order.
	// Values that are lists, dicts, sets or *big.Int are shared between
	// tasks and must not be modified.
	Params *pickle.Dict
}

// Spec is a parsed and validated sweep spec. It is immutable and safe for
// concurrent use.
type Spec struct {
	grid   []column
	zip    []column
	zipLen int         // length of every zip column; 0 without zip
	list   [][]binding // entries, each sorted by order; nil without list
	consts []binding
	fixed  []slot // grid, zip and constants parameters, sorted by order
	repeat int    // 0 without repeat
	count  int
}

// column is a grid or zip parameter and its values.
type column struct {
	name   string
	order  int
	values []any
}

// binding is a parameter with a single value: a constant or part of a list
// entry.
type binding struct {
	name  string
	order int
	value any
}

// source says which section a parameter comes from.
type source uint8

const (
	fromGrid source = iota
	fromZip
	fromConstants
)

// slot locates a grid, zip or constant parameter: Spec.grid[col],
// Spec.zip[col] or Spec.consts[col].
type slot struct {
	order int
	src   source
	col   int
}

// Parse parses and validates a sweep spec without expanding it. It allows
// at most DefaultMaxTasks tasks.
func Parse(data []byte) (*Spec, error) {
	return ParseLimit(data, DefaultMaxTasks)
}

// ParseLimit is Parse allowing at most maxTasks tasks; maxTasks <= 0 means
// DefaultMaxTasks. The number of tasks is computed without expanding.
func ParseLimit(data []byte, maxTasks int) (*Spec, error) {
	if maxTasks <= 0 {
		maxTasks = DefaultMaxTasks
	}
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	if err := checkNodes(root); err != nil {
		return nil, err
	}
	b := &builder{d: newDecoder(), names: map[string]*definition{}}
	if err := b.spec(root); err != nil {
		return nil, err
	}
	return b.finish(maxTasks)
}

// Expand parses a sweep spec and returns its tasks, allowing at most
// DefaultMaxTasks of them.
func Expand(data []byte) ([]Task, error) {
	s, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return s.Tasks(), nil
}

// Count returns the number of tasks, without expanding them.
func (s *Spec) Count() int {
	if s == nil {
		return 0
	}
	return s.count
}

// Tasks returns all the tasks, in order. The same spec always gives the
// same tasks. For large sweeps, All avoids holding them all at once.
func (s *Spec) Tasks() []Task {
	tasks := make([]Task, 0, s.Count())
	for t := range s.All() {
		tasks = append(tasks, t)
	}
	return tasks
}

// All returns an iterator over the tasks, in order, building each one as it
// is reached.
func (s *Spec) All() iter.Seq[Task] {
	return func(yield func(Task) bool) {
		if s == nil {
			return
		}
		digits := make([]int, len(s.grid))
		for i := range s.count {
			if !yield(s.task(i, digits)) {
				return
			}
		}
	}
}

// task builds task i; digits is scratch space of len(s.grid).
func (s *Spec) task(i int, digits []int) Task {
	r := i
	seed := 0
	if s.repeat > 0 {
		seed, r = r%s.repeat, r/s.repeat
	}
	var entry []binding
	if len(s.list) > 0 {
		entry, r = s.list[r%len(s.list)], r/len(s.list)
	}
	row := 0
	if s.zipLen > 0 {
		row, r = r%s.zipLen, r/s.zipLen
	}
	for k := len(s.grid) - 1; k >= 0; k-- {
		n := len(s.grid[k].values)
		digits[k], r = r%n, r/n
	}

	params := pickle.NewDict()
	f, e := 0, 0
	for f < len(s.fixed) || e < len(entry) {
		if e == len(entry) || f < len(s.fixed) && s.fixed[f].order < entry[e].order {
			sl := s.fixed[f]
			switch sl.src {
			case fromGrid:
				c := s.grid[sl.col]
				params.Set(c.name, c.values[digits[sl.col]])
			case fromZip:
				c := s.zip[sl.col]
				params.Set(c.name, c.values[row])
			case fromConstants:
				c := s.consts[sl.col]
				params.Set(c.name, c.value)
			}
			f++
		} else {
			params.Set(entry[e].name, entry[e].value)
			e++
		}
	}
	if s.repeat > 0 {
		params.Set(SeedParam, int64(seed))
	}
	return Task{ID: TaskID(i, s.count), Params: params}
}

// TaskID returns the ID of task i (0-based) of n: i zero-padded to the
// width of the largest ID, n-1, and to at least 4 digits. IDs of one sweep
// thus sort in task order: "0000".."0049", or "00000".."10000" for 10001
// tasks.
func TaskID(i, n int) string {
	width := 4
	if n > 1 {
		width = max(width, len(strconv.Itoa(n-1)))
	}
	return fmt.Sprintf("%0*d", width, i)
}

// definition records where a parameter name was first defined.
type definition struct {
	section string
	order   int
	line    int
	field   string
}

// builder turns a checked document into a Spec.
type builder struct {
	d      *decoder
	s      Spec
	names  map[string]*definition
	nNames int

	hasZip, hasList bool
	repeat          *big.Int // nil without repeat
}

// spec reads the top-level mapping and its sections.
func (b *builder) spec(root *yaml.Node) error {
	top := deref(root)
	if top.Kind == yaml.ScalarNode && top.ShortTag() == tagNull {
		return &Error{Msg: "the spec is empty; expected a mapping with at least one of " + sectionList}
	}
	if top.Kind != yaml.MappingNode || top.ShortTag() != tagMap {
		return &Error{Line: top.Line, Msg: fmt.Sprintf("the spec must be a mapping with at least one of %s, got %s", sectionList, kindOf(top))}
	}
	ents, err := b.d.mapEntries(top, nil)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return &Error{Line: top.Line, Msg: "the spec is empty; expected a mapping with at least one of " + sectionList}
	}
	for _, e := range ents {
		p := (*path)(nil).child(e.key)
		name, _ := e.key.(string)
		switch name {
		case "grid":
			err = b.grid(e, p)
		case "zip":
			err = b.zip(e, p)
		case "list":
			err = b.list(e, p)
		case "constants":
			err = b.constants(e, p)
		case "repeat":
			err = b.repeatSection(e, p)
		default:
			err = errAt(e.knode, p, "unknown key%s; a spec has only %s", suggest(e.key), sectionList)
		}
		if err != nil {
			return err
		}
	}
	if def := b.names[SeedParam]; def != nil && b.repeat != nil {
		return &Error{Field: def.field, Line: def.line, Msg: fmt.Sprintf("%q is set by repeat (to 0..N-1); rename this parameter or remove repeat", SeedParam)}
	}
	return nil
}

// suggest returns " (did you mean "constants"?)" when key looks like a
// misspelt section name, or "".
func suggest(key any) string {
	k, ok := key.(string)
	if !ok || len(k) > 20 {
		return ""
	}
	k = strings.ToLower(k)
	for _, s := range sections {
		if typo.Distance(k, s) <= 2 {
			return fmt.Sprintf(" (did you mean %q?)", s)
		}
	}
	return ""
}

// define records parameter name, from section, at key node kn and path p,
// and returns its order of first appearance. A name may appear in several
// entries of the list section, but not in two sections.
func (b *builder) define(name, section string, kn *yaml.Node, p *path) (int, error) {
	if def, ok := b.names[name]; ok {
		if def.section == section {
			return def.order, nil
		}
		return 0, errAt(kn, p, "parameter %q is also defined in %s (line %d); a parameter can come from one section only", clip(name, 40), def.section, def.line)
	}
	def := &definition{section: section, order: b.nNames, line: kn.Line, field: p.String()}
	b.names[name] = def
	b.nNames++
	return def.order, nil
}

// paramName returns the key of e as a parameter name.
func paramName(e entry, p *path) (string, error) {
	name, ok := e.key.(string)
	if !ok {
		return "", errAt(e.knode, p, "parameter names must be strings, got %s; quote it", kindOfValue(e.key))
	}
	return name, nil
}

// isEmpty reports whether n is null, an empty mapping or an empty list.
func isEmpty(n *yaml.Node) bool {
	n = deref(n)
	switch n.Kind {
	case yaml.ScalarNode:
		return n.ShortTag() == tagNull
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) == 0
	}
	return false
}

// paramMap returns the entries of section e, which must be a non-empty
// mapping of parameter names to what.
func (b *builder) paramMap(e entry, p *path, what, ifEmpty string) ([]entry, error) {
	if isEmpty(e.vnode) {
		return nil, errAt(e.knode, p, "is empty; %s", ifEmpty)
	}
	v := deref(e.vnode)
	if v.Kind != yaml.MappingNode || v.ShortTag() != tagMap {
		return nil, errAt(e.knode, p, "must be a mapping of parameter names to %s, got %s", what, kindOf(v))
	}
	ents, err := b.d.mapEntries(v, p)
	if err != nil {
		return nil, err
	}
	if len(ents) == 0 {
		return nil, errAt(e.knode, p, "is empty; %s", ifEmpty)
	}
	return ents, nil
}

// values returns the values of a grid or zip parameter, which must be a
// list.
func (b *builder) values(e entry, p *path) ([]any, error) {
	v := deref(e.vnode)
	if v.Kind != yaml.SequenceNode {
		msg := "must be a list of values, got " + kindOf(v)
		if v.Kind == yaml.ScalarNode && v.Value != "" && !strings.ContainsAny(v.Value, "\r\n") {
			msg += fmt.Sprintf("; write [%s] for a single value", clip(v.Value, 40))
		}
		return nil, errAt(e.knode, p, "%s", msg)
	}
	val, err := b.d.value(e.vnode, p)
	if err != nil {
		return nil, err
	}
	return val.([]any), nil
}

// param names and defines the parameter of a section's entry, returning
// its path, name and order of definition.
func (b *builder) param(pe entry, p *path, section string) (*path, string, int, error) {
	pp := p.child(pe.key)
	name, err := paramName(pe, pp)
	if err != nil {
		return nil, "", 0, err
	}
	order, err := b.define(name, section, pe.knode, pp)
	if err != nil {
		return nil, "", 0, err
	}
	return pp, name, order, nil
}

// grid reads the grid section.
func (b *builder) grid(e entry, p *path) error {
	ents, err := b.paramMap(e, p, "lists of values", "give each parameter a list of values, or remove the section")
	if err != nil {
		return err
	}
	for _, pe := range ents {
		pp, name, order, err := b.param(pe, p, "grid")
		if err != nil {
			return err
		}
		vals, err := b.values(pe, pp)
		if err != nil {
			return err
		}
		if len(vals) == 0 {
			return errAt(pe.knode, pp, "is an empty list, so the grid would give no tasks")
		}
		b.s.grid = append(b.s.grid, column{name: name, order: order, values: vals})
	}
	return nil
}

// zip reads the zip section.
func (b *builder) zip(e entry, p *path) error {
	ents, err := b.paramMap(e, p, "lists of values", "give each parameter a list of values, or remove the section")
	if err != nil {
		return err
	}
	b.hasZip = true
	for i, pe := range ents {
		pp, name, order, err := b.param(pe, p, "zip")
		if err != nil {
			return err
		}
		vals, err := b.values(pe, pp)
		if err != nil {
			return err
		}
		if i == 0 {
			if len(vals) == 0 {
				return errAt(pe.knode, pp, "is an empty list, so zip would give no tasks")
			}
			b.s.zipLen = len(vals)
		} else if len(vals) != b.s.zipLen {
			first := b.s.zip[0]
			return errAt(pe.knode, pp, "has %d values but zip.%s has %d; all zip lists must have the same length",
				len(vals), clip(first.name, 40), b.s.zipLen)
		}
		b.s.zip = append(b.s.zip, column{name: name, order: order, values: vals})
	}
	return nil
}

// list reads the list section.
func (b *builder) list(e entry, p *path) error {
	if isEmpty(e.vnode) {
		return errAt(e.knode, p, "is empty, so the sweep would have no tasks; give at least one entry, or remove the section")
	}
	v := deref(e.vnode)
	if v.Kind != yaml.SequenceNode || v.ShortTag() != tagSeq {
		return errAt(e.knode, p, "must be a list of mappings of parameter names to values, got %s", kindOf(v))
	}
	b.hasList = true
	for i, item := range v.Content {
		ip := p.elem(i)
		m := deref(item)
		if m.Kind != yaml.MappingNode || m.ShortTag() != tagMap {
			return errAt(item, ip, "must be a mapping of parameter names to values, got %s", kindOf(m))
		}
		ents, err := b.d.mapEntries(m, ip)
		if err != nil {
			return err
		}
		row := make([]binding, 0, len(ents))
		for _, pe := range ents {
			pp := ip.child(pe.key)
			name, err := paramName(pe, pp)
			if err != nil {
				return err
			}
			order, err := b.define(name, "list", pe.knode, pp)
			if err != nil {
				return err
			}
			val, err := b.d.value(pe.vnode, pp)
			if err != nil {
				return err
			}
			row = append(row, binding{name: name, order: order, value: val})
		}
		slices.SortFunc(row, func(x, y binding) int { return x.order - y.order })
		b.s.list = append(b.s.list, row)
	}
	return nil
}

// constants reads the constants section.
func (b *builder) constants(e entry, p *path) error {
	ents, err := b.paramMap(e, p, "values", "give at least one parameter, or remove the section")
	if err != nil {
		return err
	}
	for _, pe := range ents {
		pp, name, order, err := b.param(pe, p, "constants")
		if err != nil {
			return err
		}
		val, err := b.d.value(pe.vnode, pp)
		if err != nil {
			return err
		}
		b.s.consts = append(b.s.consts, binding{name: name, order: order, value: val})
	}
	return nil
}

// repeatSection reads repeat.
func (b *builder) repeatSection(e entry, p *path) error {
	v := deref(e.vnode)
	if v.Kind != yaml.ScalarNode {
		return errAt(e.knode, p, "must be a positive integer, got %s", kindOf(v))
	}
	val, err := b.d.value(v, p)
	if err != nil {
		return err
	}
	switch n := val.(type) {
	case int64:
		if n >= 1 {
			b.repeat = big.NewInt(n)
			return nil
		}
	case *big.Int:
		if n.Sign() > 0 {
			b.repeat = n
			return nil
		}
	}
	return errAt(e.knode, p, "must be a positive integer, got %s", kindOfValue(val))
}

// finish counts the tasks, checks them against maxTasks, and lays out the
// parameters.
func (b *builder) finish(maxTasks int) (*Spec, error) {
	var factors []*big.Int
	for _, c := range b.s.grid {
		factors = append(factors, big.NewInt(int64(len(c.values))))
	}
	if b.hasZip {
		factors = append(factors, big.NewInt(int64(b.s.zipLen)))
	}
	if b.hasList {
		factors = append(factors, big.NewInt(int64(len(b.s.list))))
	}
	if b.repeat != nil {
		factors = append(factors, b.repeat)
	}
	count, desc, ok := product(factors, int64(maxTasks))
	if !ok {
		return nil, &Error{Msg: fmt.Sprintf("the spec gives %s tasks, more than the maximum of %d", desc, maxTasks)}
	}
	s := &b.s
	s.count = int(count)
	if b.repeat != nil {
		s.repeat = int(b.repeat.Int64())
	}
	for i, c := range s.grid {
		s.fixed = append(s.fixed, slot{order: c.order, src: fromGrid, col: i})
	}
	for i, c := range s.zip {
		s.fixed = append(s.fixed, slot{order: c.order, src: fromZip, col: i})
	}
	for i, c := range s.consts {
		s.fixed = append(s.fixed, slot{order: c.order, src: fromConstants, col: i})
	}
	slices.SortFunc(s.fixed, func(x, y slot) int { return x.order - y.order })
	return s, nil
}

// product multiplies the positive factors. When the product is at most
// limit it returns it and true; otherwise it returns a description of it,
// such as "1200000" or, when huge, "about 10^400", and false.
func product(factors []*big.Int, limit int64) (n int64, desc string, ok bool) {
	exact := big.NewInt(1)
	log10 := 0.0 // used once exact grows too large to be worth keeping
	huge := false
	for _, f := range factors {
		if huge {
			log10 += bigLog10(f)
			continue
		}
		exact.Mul(exact, f)
		if exact.BitLen() > 128 {
			huge, log10 = true, bigLog10(exact)
		}
	}
	switch {
	case huge:
		return 0, fmt.Sprintf("about 10^%d", int(math.Floor(log10))), false
	case exact.IsInt64() && exact.Int64() <= limit:
		return exact.Int64(), "", true
	}
	return 0, exact.String(), false
}

// bigLog10 returns log10(x) for a positive x.
func bigLog10(x *big.Int) float64 {
	f, _ := new(big.Float).SetInt(x).Float64()
	if !math.IsInf(f, 0) {
		return math.Log10(f)
	}
	// Beyond float64: log10(x) = log10(mantissa) + exp*log10(2).
	var m big.Float
	exp := new(big.Float).SetInt(x).MantExp(&m)
	mf, _ := m.Float64()
	return math.Log10(mf) + float64(exp)*math.Log10(2)
}
