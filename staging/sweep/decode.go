package sweep

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/slicerburst/burst/staging/pickle"
)

// Limits on what aliases and nesting may do, so that a small file cannot make
// the expansion, or the pickles written from it, arbitrarily large.
const (
	// maxAliasValues is how many values aliases (and merge keys) may add to
	// the spec, counting each alias as a full copy of what it refers to.
	maxAliasValues = 1_000_000
	// maxDepth is how deeply values may nest, aliases expanded, counting the
	// top-level mapping as level 1.
	maxDepth = 100
	// maxIntDigits is the longest integer literal accepted, as in Python.
	maxIntDigits = 4300
)

// YAML tags, in their short form.
const (
	tagNull      = "!!null"
	tagBool      = "!!bool"
	tagStr       = "!!str"
	tagInt       = "!!int"
	tagFloat     = "!!float"
	tagTimestamp = "!!timestamp"
	tagBinary    = "!!binary"
	tagMerge     = "!!merge"
	tagSeq       = "!!seq"
	tagMap       = "!!map"
	tagSet       = "!!set"
)

// path is the location of a value in the spec, as a linked list from the
// value up to its top-level key. It is only rendered when an error is made.
type path struct {
	up    *path
	key   any // mapping key; unused when isIdx
	index int
	isIdx bool
}

// child returns the path of the value under mapping key k.
func (p *path) child(k any) *path { return &path{up: p, key: k} }

// elem returns the path of the i-th element of a sequence.
func (p *path) elem(i int) *path { return &path{up: p, index: i, isIdx: true} }

// String renders p as "grid.radius", "list[3].sigma", `constants["a b"]`.
func (p *path) String() string {
	if p == nil {
		return ""
	}
	var segs []*path
	for q := p; q != nil; q = q.up {
		segs = append(segs, q)
	}
	var b strings.Builder
	for i := len(segs) - 1; i >= 0; i-- {
		q := segs[i]
		switch k, ok := q.key.(string); {
		case q.isIdx:
			fmt.Fprintf(&b, "[%d]", q.index)
		case ok && isIdent(k):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case ok:
			b.WriteString("[" + strconv.Quote(clip(k, 40)) + "]")
		default:
			b.WriteString("[" + repr(q.key) + "]")
		}
	}
	return b.String()
}

// isIdent reports whether s can be shown in a dotted path without quoting.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && (c == '-' || '0' <= c && c <= '9'):
		default:
			return false
		}
	}
	return true
}

// repr renders a scalar as Python would show it, for messages and paths.
func repr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case *big.Int:
		s := v.String()
		if len(s) > 40 {
			return s[:20] + "..." + s[len(s)-10:]
		}
		return s
	case float64:
		switch {
		case math.IsNaN(v):
			return "nan"
		case math.IsInf(v, 1):
			return "inf"
		case math.IsInf(v, -1):
			return "-inf"
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eIN") {
			s += ".0"
		}
		return s
	case string:
		return strconv.Quote(clip(v, 40))
	case []byte:
		return fmt.Sprintf("%d bytes of binary data", len(v))
	}
	return fmt.Sprintf("%T", v)
}

// errAt returns an *Error located at n (which may be nil) and p.
func errAt(n *yaml.Node, p *path, format string, args ...any) *Error {
	e := &Error{Field: p.String(), Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

// deref follows an alias to the node it refers to. The parser only makes
// aliases to anchored nodes, which are never aliases themselves.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// nodeInfo is what checkNodes learns about an anchored node.
type nodeInfo struct {
	size   int64 // values in the node, aliases expanded
	height int   // nesting levels in the node, aliases expanded
	done   bool  // false while the node is being walked
}

// checker walks a document before it is decoded, rejecting alias cycles,
// alias expansion beyond maxAliasValues and nesting beyond maxDepth.
type checker struct {
	anchors map[*yaml.Node]*nodeInfo
	added   int64 // values added by aliases so far
}

// checkNodes checks the document rooted at root; see checker.
func checkNodes(root *yaml.Node) error {
	c := &checker{anchors: map[*yaml.Node]*nodeInfo{}}
	_, _, err := c.walk(root, 1)
	return err
}

// walk returns the expanded size and height of n, found at nesting depth.
// Nodes are visited in document order, so an alias always refers to a node
// that has been walked already, or is being walked (a cycle).
func (c *checker) walk(n *yaml.Node, depth int) (size int64, height int, err error) {
	if n == nil {
		return 0, 0, &Error{Msg: "invalid YAML: missing node"}
	}
	if n.Kind == yaml.AliasNode {
		info := c.anchors[n.Alias]
		switch {
		case info == nil:
			return 0, 0, &Error{Line: n.Line, Msg: fmt.Sprintf("alias *%s refers to no anchor before it", clip(n.Value, 40))}
		case !info.done:
			return 0, 0, &Error{Line: n.Line, Msg: fmt.Sprintf("alias *%s is used inside its own anchor &%[1]s, which would make an infinite value", clip(n.Value, 40))}
		case depth-1+info.height > maxDepth:
			return 0, 0, &Error{Line: n.Line, Msg: fmt.Sprintf("alias *%s nests values more than %d levels deep", clip(n.Value, 40), maxDepth)}
		}
		c.added += info.size - 1
		if c.added > maxAliasValues {
			return 0, 0, &Error{Line: n.Line, Msg: fmt.Sprintf("aliases expand the spec by more than %d values; write the values out or use fewer aliases", maxAliasValues)}
		}
		return info.size, info.height, nil
	}
	if depth > maxDepth {
		return 0, 0, &Error{Line: n.Line, Msg: fmt.Sprintf("values nest more than %d levels deep", maxDepth)}
	}
	var info *nodeInfo
	if n.Anchor != "" {
		info = &nodeInfo{}
		c.anchors[n] = info
	}
	size, height = 1, 1
	for _, ch := range n.Content {
		s, h, err := c.walk(ch, depth+1)
		if err != nil {
			return 0, 0, err
		}
		size += s
		height = max(height, h+1)
	}
	if info != nil {
		info.size, info.height, info.done = size, height, true
	}
	return size, height, nil
}

// entry is one key and value of a mapping, after merge keys are resolved.
type entry struct {
	key   any        // the decoded key
	knode *yaml.Node // the key's node, for its line
	vnode *yaml.Node // the value's node, possibly an alias
}

// decoder converts checked YAML nodes to Go values. Anchored nodes are
// converted once and their value shared by every alias.
type decoder struct {
	values  map[*yaml.Node]any
	entries map[*yaml.Node][]entry
}

func newDecoder() *decoder {
	return &decoder{values: map[*yaml.Node]any{}, entries: map[*yaml.Node][]entry{}}
}

// value converts n, found at p, to a Go value.
func (d *decoder) value(n *yaml.Node, p *path) (any, error) {
	n = deref(n)
	if v, ok := d.values[n]; ok {
		return v, nil
	}
	var v any
	var err error
	switch n.Kind {
	case yaml.ScalarNode:
		v, err = d.scalar(n, p)
	case yaml.SequenceNode:
		v, err = d.sequence(n, p)
	case yaml.MappingNode:
		v, err = d.mapping(n, p)
	default:
		err = errAt(n, p, "invalid YAML node")
	}
	if err != nil {
		return nil, err
	}
	if n.Anchor != "" {
		d.values[n] = v
	}
	return v, nil
}

// sequence converts a sequence node to a []any.
func (d *decoder) sequence(n *yaml.Node, p *path) (any, error) {
	if t := n.ShortTag(); t != tagSeq {
		return nil, errAt(n, p, "unsupported tag %s on a list; only plain lists are allowed", clip(t, 40))
	}
	out := make([]any, len(n.Content))
	for i, ch := range n.Content {
		v, err := d.value(ch, p.elem(i))
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// mapping converts a mapping node to a *pickle.Dict, or a pickle.Set when
// tagged !!set.
func (d *decoder) mapping(n *yaml.Node, p *path) (any, error) {
	t := n.ShortTag()
	if t != tagMap && t != tagSet {
		return nil, errAt(n, p, "unsupported tag %s on a mapping; only plain mappings and !!set are allowed", clip(t, 40))
	}
	ents, err := d.mapEntries(n, p)
	if err != nil {
		return nil, err
	}
	if t == tagSet {
		set := make(pickle.Set, 0, len(ents))
		for _, e := range ents {
			if v := deref(e.vnode); v.Kind != yaml.ScalarNode || v.ShortTag() != tagNull {
				return nil, errAt(e.vnode, p.child(e.key), "a !!set has keys only; remove the value")
			}
			set = append(set, e.key)
		}
		return set, nil
	}
	dict := pickle.NewDict()
	for _, e := range ents {
		v, err := d.value(e.vnode, p.child(e.key))
		if err != nil {
			return nil, err
		}
		dict.Set(e.key, v)
	}
	return dict, nil
}

// mapEntries returns the entries of mapping node n (not an alias), found at
// p, with merge keys ("<<") resolved: the mapping's own keys keep their
// places and win over merged ones; the keys merged in and not overridden
// take the place of the "<<" key, the first mapping merged winning when
// several are. Keys must be scalars and unique, compared as Python would.
func (d *decoder) mapEntries(n *yaml.Node, p *path) ([]entry, error) {
	if ents, ok := d.entries[n]; ok {
		return ents, nil
	}
	if len(n.Content)%2 != 0 {
		return nil, errAt(n, p, "invalid YAML mapping")
	}
	seen := make(map[string]bool, len(n.Content)/2)
	own := make([]entry, 0, len(n.Content)/2)
	var merge *yaml.Node // the value of the "<<" key
	mergeAt := -1        // its position among own
	for i := 0; i < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		k := deref(kn)
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(kn, p, "mapping keys must be strings, numbers, booleans or null, not %s", kindOf(k))
		}
		if k.ShortTag() == tagMerge {
			if merge != nil {
				return nil, errAt(kn, p, `duplicate merge key "<<"; merge several mappings with a list: <<: [*a, *b]`)
			}
			merge, mergeAt = vn, len(own)
			continue
		}
		key, err := d.key(k, p)
		if err != nil {
			return nil, err
		}
		c := canonical(key)
		if seen[c] {
			return nil, errAt(kn, p.child(key), "duplicate key %s", repr(key))
		}
		seen[c] = true
		own = append(own, entry{key: key, knode: kn, vnode: vn})
	}
	ents := own
	if merge != nil {
		merged, err := d.merged(merge, p, seen)
		if err != nil {
			return nil, err
		}
		ents = make([]entry, 0, len(own)+len(merged))
		ents = append(ents, own[:mergeAt]...)
		ents = append(ents, merged...)
		ents = append(ents, own[mergeAt:]...)
	}
	if n.Anchor != "" {
		d.entries[n] = ents
	}
	return ents, nil
}

// merged returns the entries a "<<" key with value node vn brings into a
// mapping at p whose keys so far are seen (which it extends).
func (d *decoder) merged(vn *yaml.Node, p *path, seen map[string]bool) ([]entry, error) {
	v := deref(vn)
	var sources []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{vn}
	case yaml.SequenceNode:
		sources = v.Content
	default:
		return nil, errAt(vn, p, `the merge key "<<" needs a mapping or a list of mappings, got %s`, kindOf(v))
	}
	var out []entry
	for _, s := range sources {
		m := deref(s)
		if m.Kind != yaml.MappingNode || m.ShortTag() != tagMap {
			return nil, errAt(s, p, `the merge key "<<" needs a mapping or a list of mappings, got %s`, kindOf(m))
		}
		ents, err := d.mapEntries(m, p)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			c := canonical(e.key)
			if !seen[c] {
				seen[c] = true
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// key converts a scalar mapping key (not an alias), rejecting the values
// Python cannot use as dict keys or this package cannot compare.
func (d *decoder) key(k *yaml.Node, p *path) (any, error) {
	v, err := d.scalar(k, p)
	if err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case []byte:
		return nil, errAt(k, p, "binary data cannot be a mapping key")
	case float64:
		if math.IsNaN(v) {
			return nil, errAt(k, p, "NaN cannot be a mapping key")
		}
	}
	return v, nil
}

// canonical returns a string equal for two keys exactly when Python
// considers them the same dict key: True, 1 and 1.0 are one key.
func canonical(k any) string {
	switch k := k.(type) {
	case nil:
		return "n"
	case bool:
		if k {
			return "i1"
		}
		return "i0"
	case int64:
		return "i" + strconv.FormatInt(k, 10)
	case *big.Int:
		return "i" + k.String()
	case float64:
		if k == math.Trunc(k) && !math.IsInf(k, 0) {
			i, _ := big.NewFloat(k).Int(nil)
			return "i" + i.String()
		}
		return "f" + strconv.FormatFloat(k, 'g', -1, 64)
	case string:
		return "s" + k
	}
	return fmt.Sprintf("?%v", k)
}

// intLiteralRE matches the integers YAML writes (once "_" are removed).
var intLiteralRE = regexp.MustCompile(`^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)$`)

// scalar converts a scalar node (not an alias) to nil, bool, int64,
// *big.Int, float64, string or []byte, by its tag. Untagged scalars are
// typed as gopkg.in/yaml.v3 resolves them, except that integers too large for
// int64 become *big.Int rather than floats or strings.
func (d *decoder) scalar(n *yaml.Node, p *path) (any, error) {
	tag := n.ShortTag()
	s := n.Value
	explicit := n.Style&yaml.TaggedStyle != 0
	plain := !explicit && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
	switch tag {
	case tagStr:
		if plain {
			if v, ok, err := bigInt(n, p, s); ok || err != nil {
				return v, err
			}
		}
		return s, nil
	case tagNull:
		switch s {
		case "", "~", "null", "Null", "NULL":
			return nil, nil
		}
	case tagBool:
		switch s {
		case "true", "True", "TRUE":
			return true, nil
		case "false", "False", "FALSE":
			return false, nil
		}
	case tagInt:
		clean := strings.ReplaceAll(s, "_", "")
		if v, err := strconv.ParseInt(clean, 0, 64); err == nil {
			return v, nil
		}
		if v, ok, err := bigInt(n, p, s); ok || err != nil {
			return v, err
		}
	case tagFloat:
		if plain {
			if v, ok, err := bigInt(n, p, s); ok || err != nil {
				return v, err
			}
		}
		switch s {
		case ".nan", ".NaN", ".NAN":
			return math.NaN(), nil
		case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF":
			return math.Inf(1), nil
		case "-.inf", "-.Inf", "-.INF":
			return math.Inf(-1), nil
		}
		if v, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); err == nil {
			return v, nil
		}
	case tagBinary:
		clean := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, s)
		if v, err := base64.StdEncoding.DecodeString(clean); err == nil {
			return v, nil
		}
		return nil, errAt(n, p, "invalid base64 in !!binary value")
	case tagTimestamp:
		return nil, errAt(n, p, "dates and times are not supported; quote the value to pass it as a string: %s", strconv.Quote(clip(s, 40)))
	case tagMerge:
		if !explicit {
			return s, nil // a plain "<<" that is not a mapping key
		}
		return nil, errAt(n, p, `the merge tag !!merge is only allowed on a mapping key`)
	default:
		return nil, errAt(n, p, "unsupported tag %s; only standard YAML types (strings, numbers, booleans, null, lists, mappings, !!binary, !!set) can be passed to a task", clip(tag, 40))
	}
	return nil, errAt(n, p, "invalid %s value %s", tag, strconv.Quote(clip(s, 40)))
}

// bigInt parses s as an integer literal too large for int64. ok is false
// when s is not such a literal.
func bigInt(n *yaml.Node, p *path, s string) (v any, ok bool, err error) {
	clean := strings.ReplaceAll(s, "_", "")
	if !intLiteralRE.MatchString(clean) {
		return nil, false, nil
	}
	if len(clean) > maxIntDigits {
		return nil, false, errAt(n, p, "integer literal longer than %d digits", maxIntDigits)
	}
	if i, err := strconv.ParseInt(clean, 0, 64); err == nil {
		return i, true, nil
	}
	b, ok := new(big.Int).SetString(clean, 0)
	if !ok {
		return nil, false, nil
	}
	if b.IsInt64() {
		return b.Int64(), true, nil
	}
	return b, true, nil
}

// kindOf describes what node n holds, for error messages.
func kindOf(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v, err := (&decoder{}).scalar(n, nil)
		if err != nil {
			if n.ShortTag() == tagTimestamp {
				return "a date"
			}
			return "a value tagged " + clip(n.ShortTag(), 40)
		}
		return kindOfValue(v)
	}
	return "nothing"
}

// kindOfValue describes a scalar value, for error messages.
func kindOfValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "the boolean " + repr(v)
	case int64, *big.Int:
		return "the integer " + repr(v)
	case float64:
		return "the float " + repr(v)
	case string:
		return "the string " + repr(v)
	case []byte:
		return repr(v)
	}
	return fmt.Sprintf("a %T", v)
}
