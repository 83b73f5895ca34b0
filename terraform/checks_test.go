package terraform_test

// A checker for the least-privilege facts of the account setup in this
// folder. It reads the HCL with hclsyntax, the way Terraform's own parser
// sees it, and reports problems as sentences naming the file and line. It
// understands the forms this module uses (aws_iam_policy_document data
// sources, jsonencode policies, literal JSON policies, dynamic blocks that
// depend only on variables) and reports anything it cannot follow as a
// problem of its own, so that a policy cannot slip past it by being written
// in an unusual way.

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Names of the module's resources that the checks are about.
const (
	bucketName  = "store"  // aws_s3_bucket.store
	workerName  = "worker" // aws_iam_role.worker, its instance profile and security group
	cliName     = "cli"    // aws_iam_policy.cli
	managedTag  = "burst:managed"
	storeRuns   = "runs/"
	storeShared = "cas/"
)

// module is every .tf file of one folder, parsed.
type module struct {
	src    map[string][]byte // by file name
	blocks []*hclsyntax.Block
}

// loadModule parses every .tf file in dir.
func loadModule(dir string) (*module, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no .tf files in %s", dir)
	}
	files := map[string][]byte{}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(name)] = b
	}
	return parseModule(files)
}

// parseModule parses the given files (name to content), in name order.
func parseModule(files map[string][]byte) (*module, error) {
	m := &module{src: files}
	parser := hclparse.NewParser()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, diags := parser.ParseHCL(files[name], name)
		if diags.HasErrors() {
			return nil, diags
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			return nil, fmt.Errorf("%s: not native HCL syntax", name)
		}
		m.blocks = append(m.blocks, body.Blocks...)
	}
	return m, nil
}

// resources returns the resource blocks of the given type, or of every type
// when typ is empty.
func (m *module) resources(typ string) []*hclsyntax.Block {
	return m.find("resource", typ)
}

func (m *module) find(kind, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.blocks {
		if b.Type == kind && len(b.Labels) > 0 && (typ == "" || b.Labels[0] == typ) {
			out = append(out, b)
		}
	}
	return out
}

// resource returns the resource typ.name, or nil.
func (m *module) resource(typ, name string) *hclsyntax.Block {
	for _, b := range m.resources(typ) {
		if len(b.Labels) == 2 && b.Labels[1] == name {
			return b
		}
	}
	return nil
}

// address is how Terraform names a resource or data block.
func address(b *hclsyntax.Block) string {
	if b.Type == "data" {
		return "data." + strings.Join(b.Labels, ".")
	}
	if b.Type == "resource" {
		return strings.Join(b.Labels, ".")
	}
	return b.Type + "." + strings.Join(b.Labels, ".")
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
}

// text is an expression's source.
func (m *module) text(e hclsyntax.Expression) string {
	r := e.Range()
	src := m.src[r.Filename]
	if r.End.Byte > len(src) || r.Start.Byte > r.End.Byte {
		return "?"
	}
	return string(src[r.Start.Byte:r.End.Byte])
}

// render gives an expression as the string it stands for where it is a
// literal, and spells out everything else in ${}: "s3:GetObject",
// "${aws_iam_role.worker.arn}", "${aws_s3_bucket.store.arn}/runs/*".
func (m *module) render(e hclsyntax.Expression) string {
	switch e := e.(type) {
	case *hclsyntax.LiteralValueExpr:
		return literal(e.Val)
	case *hclsyntax.TemplateExpr:
		var sb strings.Builder
		for _, part := range e.Parts {
			if lit, ok := part.(*hclsyntax.LiteralValueExpr); ok {
				sb.WriteString(literal(lit.Val))
				continue
			}
			sb.WriteString("${" + m.text(part) + "}")
		}
		return sb.String()
	case *hclsyntax.TemplateWrapExpr:
		return "${" + m.text(e.Wrapped) + "}"
	}
	return "${" + m.text(e) + "}"
}

func literal(v cty.Value) string {
	switch {
	case v.IsNull():
		return "null"
	case v.Type() == cty.String:
		return v.AsString()
	case v.Type() == cty.Bool:
		return fmt.Sprint(v.True())
	case v.Type() == cty.Number:
		return v.AsBigFloat().Text('f', -1)
	}
	return "${?}"
}

// isLiteral reports whether render gave a plain value, not a reference.
func isLiteral(s string) bool { return !strings.Contains(s, "${") }

// attr renders the attribute name of body; ok is false when it is absent.
func (m *module) attr(body *hclsyntax.Body, name string) (string, bool) {
	a, ok := body.Attributes[name]
	if !ok {
		return "", false
	}
	return m.render(a.Expr), true
}

// list renders each element of a list attribute. ok is false when the
// attribute is absent; err says when it is not written as a list.
func (m *module) list(body *hclsyntax.Body, name string) (vals []string, ok bool, err error) {
	a, ok := body.Attributes[name]
	if !ok {
		return nil, false, nil
	}
	tuple, isTuple := a.Expr.(*hclsyntax.TupleConsExpr)
	if !isTuple {
		return nil, true, fmt.Errorf("%s at %s is %s, not a list written out", name, pos(a.SrcRange), m.text(a.Expr))
	}
	for _, e := range tuple.Exprs {
		vals = append(vals, m.render(e))
	}
	return vals, true, nil
}

// blocksOf returns the nested blocks of type typ in body.
func blocksOf(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// dynamicOf returns the dynamic blocks that generate blocks of type typ.
func dynamicOf(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range blocksOf(body, "dynamic") {
		if len(b.Labels) == 1 && b.Labels[0] == typ {
			out = append(out, b)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// IAM policy statements

type condition struct {
	test, variable string
	values         []string
}

func (c condition) String() string {
	v := slices.Clone(c.values)
	sort.Strings(v)
	return fmt.Sprintf("%s %s %v", c.test, c.variable, v)
}

type statement struct {
	doc          string // the document's address
	where        string // file:line
	sid          string
	effect       string
	actions      []string
	notActions   bool
	resources    []string
	notResources bool
	principals   []string // "type:identifier"
	conditions   []condition
}

func (s statement) name() string {
	if s.sid != "" {
		return fmt.Sprintf("%s statement %q (%s)", s.doc, s.sid, s.where)
	}
	return fmt.Sprintf("%s statement at %s", s.doc, s.where)
}

func (s statement) allows() bool { return s.effect == "Allow" }

// policySet is every IAM policy of a module: the documents by address and
// which document each policy attribute uses.
type policySet struct {
	docs     map[string][]statement
	uses     map[string]string // "aws_iam_policy.cli.policy" -> document address
	problems []string
}

// policyAttrs are the attributes that hold an IAM policy document.
var policyAttrs = map[string]bool{"policy": true, "assume_role_policy": true}

func (m *module) policies() *policySet {
	p := &policySet{docs: map[string][]statement{}, uses: map[string]string{}}
	for _, b := range m.find("data", "aws_iam_policy_document") {
		m.readPolicyDocument(p, b)
	}
	for _, b := range m.blocks {
		if b.Type != "resource" && b.Type != "data" {
			continue
		}
		if b.Type == "data" && b.Labels[0] == "aws_iam_policy_document" {
			continue
		}
		m.readPolicyAttrs(p, address(b), b.Body)
	}
	return p
}

func (m *module) readPolicyDocument(p *policySet, b *hclsyntax.Block) {
	doc := address(b)
	p.docs[doc] = nil
	for _, name := range []string{"source_policy_documents", "override_policy_documents", "source_json", "override_json"} {
		if a, ok := b.Body.Attributes[name]; ok {
			p.problems = append(p.problems, fmt.Sprintf("%s merges other documents with %s (%s), which cannot be checked", doc, name, pos(a.SrcRange)))
		}
	}
	for _, d := range blocksOf(b.Body, "dynamic") {
		p.problems = append(p.problems, fmt.Sprintf("%s has a dynamic %q block (%s), which cannot be checked", doc, strings.Join(d.Labels, ""), pos(d.DefRange())))
	}
	for _, sb := range blocksOf(b.Body, "statement") {
		st := statement{doc: doc, where: pos(sb.DefRange()), effect: "Allow"}
		body := sb.Body
		if v, ok := m.attr(body, "sid"); ok {
			st.sid = v
		}
		if v, ok := m.attr(body, "effect"); ok {
			st.effect = v
		}
		bad := func(err error) {
			if err != nil {
				p.problems = append(p.problems, fmt.Sprintf("%s: %v", st.name(), err))
			}
		}
		var err error
		st.actions, _, err = m.list(body, "actions")
		bad(err)
		_, st.notActions, err = m.list(body, "not_actions")
		bad(err)
		st.resources, _, err = m.list(body, "resources")
		bad(err)
		_, st.notResources, err = m.list(body, "not_resources")
		bad(err)
		for _, pb := range blocksOf(body, "principals") {
			typ, _ := m.attr(pb.Body, "type")
			ids, _, err := m.list(pb.Body, "identifiers")
			bad(err)
			for _, id := range ids {
				st.principals = append(st.principals, typ+":"+id)
			}
		}
		for _, cb := range blocksOf(body, "condition") {
			c := condition{}
			c.test, _ = m.attr(cb.Body, "test")
			c.variable, _ = m.attr(cb.Body, "variable")
			c.values, _, err = m.list(cb.Body, "values")
			bad(err)
			st.conditions = append(st.conditions, c)
		}
		for _, d := range blocksOf(body, "dynamic") {
			bad(fmt.Errorf("dynamic %q block (%s) cannot be checked", strings.Join(d.Labels, ""), pos(d.DefRange())))
		}
		if len(blocksOf(body, "not_principals")) > 0 && st.allows() {
			bad(fmt.Errorf("allows with not_principals"))
		}
		p.docs[doc] = append(p.docs[doc], st)
	}
}

// readPolicyAttrs finds the policy attributes of a resource, in nested
// blocks too, and reads the documents written inline.
func (m *module) readPolicyAttrs(p *policySet, addr string, body *hclsyntax.Body) {
	for name, a := range body.Attributes {
		if !policyAttrs[name] {
			continue
		}
		key := addr + "." + name
		if trav, ok := a.Expr.(*hclsyntax.ScopeTraversalExpr); ok {
			ref := m.text(trav)
			doc, isDoc := strings.CutSuffix(ref, ".json")
			if isDoc && strings.HasPrefix(doc, "data.aws_iam_policy_document.") {
				if _, exists := p.docs[doc]; !exists {
					p.problems = append(p.problems, fmt.Sprintf("%s uses %s, which is not in the module", key, doc))
				}
				p.uses[key] = doc
				continue
			}
		}
		var v any
		switch e := a.Expr.(type) {
		case *hclsyntax.FunctionCallExpr:
			if e.Name != "jsonencode" || len(e.Args) != 1 {
				break
			}
			v = m.static(e.Args[0])
		case *hclsyntax.TemplateExpr:
			if !e.IsStringLiteral() {
				break
			}
			s := m.render(e)
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				p.problems = append(p.problems, fmt.Sprintf("%s (%s) is not valid JSON: %v", key, pos(a.SrcRange), err))
				continue
			}
		}
		obj, ok := v.(map[string]any)
		if !ok {
			p.problems = append(p.problems, fmt.Sprintf("%s (%s) is %s: not a policy document, jsonencode or JSON that can be checked", key, pos(a.SrcRange), m.text(a.Expr)))
			continue
		}
		p.uses[key] = key
		p.docs[key] = nil
		for _, raw := range asList(obj["Statement"]) {
			st, err := jsonStatement(key, pos(a.SrcRange), raw)
			if err != nil {
				p.problems = append(p.problems, err.Error())
				continue
			}
			p.docs[key] = append(p.docs[key], st)
		}
	}
	for _, nb := range body.Blocks {
		m.readPolicyAttrs(p, addr+"."+nb.Type, nb.Body)
	}
}

// static turns an expression into plain Go values where it is written out
// (objects, lists, literals) and into its rendered source elsewhere.
func (m *module) static(e hclsyntax.Expression) any {
	switch e := e.(type) {
	case *hclsyntax.ObjectConsExpr:
		obj := map[string]any{}
		for _, item := range e.Items {
			key := hcl.ExprAsKeyword(item.KeyExpr)
			if key == "" {
				if k, ok := item.KeyExpr.(*hclsyntax.ObjectConsKeyExpr); ok {
					key = m.render(k.Wrapped)
				} else {
					key = m.render(item.KeyExpr)
				}
			}
			obj[key] = m.static(item.ValueExpr)
		}
		return obj
	case *hclsyntax.TupleConsExpr:
		var list []any
		for _, el := range e.Exprs {
			list = append(list, m.static(el))
		}
		return list
	}
	return m.render(e)
}

func asList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}

func asStrings(v any) []string {
	var out []string
	for _, el := range asList(v) {
		out = append(out, fmt.Sprint(el))
	}
	return out
}

func jsonStatement(doc, where string, raw any) (statement, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return statement{}, fmt.Errorf("%s (%s): a statement is %v, not an object", doc, where, raw)
	}
	st := statement{doc: doc, where: where, effect: fmt.Sprint(obj["Effect"])}
	if sid, ok := obj["Sid"]; ok {
		st.sid = fmt.Sprint(sid)
	}
	st.actions = asStrings(obj["Action"])
	_, st.notActions = obj["NotAction"]
	st.resources = asStrings(obj["Resource"])
	_, st.notResources = obj["NotResource"]
	switch pr := obj["Principal"].(type) {
	case nil:
	case map[string]any:
		for typ, ids := range pr {
			for _, id := range asStrings(ids) {
				st.principals = append(st.principals, typ+":"+id)
			}
		}
	default:
		st.principals = append(st.principals, "*:"+fmt.Sprint(pr))
	}
	if conds, ok := obj["Condition"].(map[string]any); ok {
		for test, vars := range conds {
			vm, ok := vars.(map[string]any)
			if !ok {
				return st, fmt.Errorf("%s: condition %s is not an object", st.name(), test)
			}
			for variable, vals := range vm {
				st.conditions = append(st.conditions, condition{test: test, variable: variable, values: asStrings(vals)})
			}
		}
	}
	if _, ok := obj["NotPrincipal"]; ok && st.allows() {
		return st, fmt.Errorf("%s allows with NotPrincipal", st.name())
	}
	return st, nil
}

// of returns the statements of the document that a policy attribute uses,
// such as "aws_iam_policy.cli.policy".
func (p *policySet) of(attr string) ([]statement, bool) {
	doc, ok := p.uses[attr]
	if !ok {
		return nil, false
	}
	return p.docs[doc], true
}

func (p *policySet) all() []statement {
	keys := make([]string, 0, len(p.docs))
	for k := range p.docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []statement
	for _, k := range keys {
		out = append(out, p.docs[k]...)
	}
	return out
}

// readOnlyOnAnyResource: the only actions that may be allowed on every
// resource, because EC2 does not scope them to resources.
func readOnlyOnAnyResource(action string) bool {
	return strings.HasPrefix(action, "ec2:Describe") || action == "pricing:GetProducts"
}

// checkWildcards: no allowed action has a wildcard or a reference in its
// name, no Allow uses NotAction or NotResource, and only EC2 Describe calls
// and the public price list are allowed on every resource ("*"), never an
// S3 action.
func checkWildcards(p *policySet) []string {
	var probs []string
	for _, st := range p.all() {
		if !st.allows() {
			continue
		}
		if st.notActions {
			probs = append(probs, fmt.Sprintf("%s allows NotAction, every action but a few", st.name()))
		}
		if st.notResources {
			probs = append(probs, fmt.Sprintf("%s allows NotResource, every resource but a few", st.name()))
		}
		anyResource := slices.Contains(st.resources, "*")
		for _, a := range st.actions {
			switch {
			case strings.Contains(a, "*"):
				probs = append(probs, fmt.Sprintf("%s allows the wildcard action %q", st.name(), a))
			case !isLiteral(a):
				probs = append(probs, fmt.Sprintf("%s allows the action %s, which is not written out", st.name(), a))
			case anyResource && strings.HasPrefix(a, "s3:"):
				probs = append(probs, fmt.Sprintf("%s allows %s on every resource (\"*\"), not only the run store", st.name(), a))
			case anyResource && !readOnlyOnAnyResource(a):
				probs = append(probs, fmt.Sprintf("%s allows %s on every resource (\"*\"); only ec2:Describe* calls may be", st.name(), a))
			}
		}
	}
	return probs
}

// allowedActions lists the actions that the statements allow, sorted, once
// each.
func allowedActions(stmts []statement) []string {
	var out []string
	for _, st := range stmts {
		if st.allows() {
			out = append(out, st.actions...)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// checkActionSet: the policy that attr uses allows exactly want.
func checkActionSet(p *policySet, attr string, want []string) []string {
	stmts, ok := p.of(attr)
	if !ok {
		return []string{fmt.Sprintf("%s is missing", attr)}
	}
	got := allowedActions(stmts)
	var probs []string
	for _, a := range got {
		if !slices.Contains(want, a) {
			probs = append(probs, fmt.Sprintf("%s allows %s, which is not in the expected list", attr, a))
		}
	}
	for _, a := range want {
		if !slices.Contains(got, a) {
			probs = append(probs, fmt.Sprintf("%s does not allow %s, which the CLI calls", attr, a))
		}
	}
	return probs
}

// checkPassRole: exactly one statement allows iam:PassRole, alone, on the
// worker role's ARN only, and only to EC2.
func checkPassRole(p *policySet) []string {
	var found []statement
	for _, st := range p.all() {
		if st.allows() && slices.Contains(st.actions, "iam:PassRole") {
			found = append(found, st)
		}
	}
	if len(found) != 1 {
		var where []string
		for _, st := range found {
			where = append(where, st.name())
		}
		return []string{fmt.Sprintf("%d statements allow iam:PassRole, want exactly 1: %v", len(found), where)}
	}
	st := found[0]
	var probs []string
	wantRes := "${aws_iam_role." + workerName + ".arn}"
	if !slices.Equal(st.resources, []string{wantRes}) {
		probs = append(probs, fmt.Sprintf("%s lets iam:PassRole pass %v, want only %s", st.name(), st.resources, wantRes))
	}
	if !slices.Equal(st.actions, []string{"iam:PassRole"}) {
		probs = append(probs, fmt.Sprintf("%s allows %v together with iam:PassRole, want iam:PassRole alone", st.name(), st.actions))
	}
	want := condition{test: "StringEquals", variable: "iam:PassedToService", values: []string{"ec2.amazonaws.com"}}
	if len(st.conditions) != 1 || st.conditions[0].String() != want.String() {
		probs = append(probs, fmt.Sprintf("%s has conditions %v, want only %v", st.name(), st.conditions, want))
	}
	return probs
}

// grant is one allowed action on one resource under some conditions.
type grant struct{ action, resource, conditions string }

func grants(stmts []statement) []grant {
	var out []grant
	for _, st := range stmts {
		if !st.allows() {
			continue
		}
		var conds []string
		for _, c := range st.conditions {
			conds = append(conds, c.String())
		}
		sort.Strings(conds)
		for _, a := range st.actions {
			for _, r := range st.resources {
				out = append(out, grant{a, r, strings.Join(conds, "; ")})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return fmt.Sprint(out[i]) < fmt.Sprint(out[j])
	})
	return slices.Compact(out)
}

// workerWrites are the folders of a run (runs/<run>/<folder>/) that
// workers write: leases, results, statuses, logs and heartbeats. Nothing
// else of a run (manifest, script, inputs, fleet record, control flags)
// nor of cas/.
var workerWrites = []string{"leases", "results", "status", "logs", "workers"}

// checkWorker: the worker role is assumed by EC2 alone, gets its rights only
// from inline policies written in the module (no managed policies), and
// those allow exactly GetObject on runs/* and cas/*, PutObject on the
// folders of workerWrites, DeleteObject on leases, and ListBucket on the
// bucket under the two prefixes. Its instance profile holds it.
func (m *module) checkWorker(p *policySet) []string {
	role := "aws_iam_role." + workerName
	b := m.resource("aws_iam_role", workerName)
	if b == nil {
		return []string{role + " is missing"}
	}
	var probs []string
	assume, ok := p.of(role + ".assume_role_policy")
	if !ok {
		probs = append(probs, role+" has no assume_role_policy that can be checked")
	}
	wantAssume := []grant{{"sts:AssumeRole", "", ""}}
	var gotAssume []grant
	for _, st := range assume {
		if !st.allows() {
			continue
		}
		if !slices.Equal(st.principals, []string{"Service:ec2.amazonaws.com"}) {
			probs = append(probs, fmt.Sprintf("%s lets %v assume the role, want only Service:ec2.amazonaws.com", st.name(), st.principals))
		}
		for _, a := range st.actions {
			gotAssume = append(gotAssume, grant{a, strings.Join(st.resources, ","), ""})
		}
	}
	if !slices.Equal(gotAssume, wantAssume) {
		probs = append(probs, fmt.Sprintf("%s assume_role_policy allows %v, want %v", role, gotAssume, wantAssume))
	}
	for _, name := range []string{"managed_policy_arns", "inline_policy"} {
		if _, ok := b.Body.Attributes[name]; ok || len(blocksOf(b.Body, name)) > 0 {
			probs = append(probs, fmt.Sprintf("%s sets %s; the worker's rights must all be in aws_iam_role_policy resources", role, name))
		}
	}
	roleRefs := []string{"${" + role + ".id}", "${" + role + ".name}"}
	for _, typ := range []string{"aws_iam_role_policy_attachment", "aws_iam_policy_attachment"} {
		for _, a := range m.resources(typ) {
			probs = append(probs, fmt.Sprintf("%s (%s) attaches a managed policy; the worker role must have none and the module attaches none", address(a), pos(a.DefRange())))
		}
	}
	var stmts []statement
	for _, rp := range m.resources("aws_iam_role_policy") {
		r, _ := m.attr(rp.Body, "role")
		if !slices.Contains(roleRefs, r) {
			continue
		}
		s, ok := p.of(address(rp) + ".policy")
		if !ok {
			probs = append(probs, address(rp)+" has no policy that can be checked")
		}
		stmts = append(stmts, s...)
	}
	arn := "${aws_s3_bucket." + bucketName + ".arn}"
	list := condition{test: "StringLike", variable: "s3:prefix", values: []string{"runs/", "runs/*", "cas/", "cas/*"}}.String()
	want := workerGrants(arn)
	want = append(want, grant{"s3:ListBucket", arn, list})
	sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]) < fmt.Sprint(want[j]) })
	got := grants(stmts)
	for _, g := range got {
		if !slices.Contains(want, g) {
			probs = append(probs, fmt.Sprintf("the worker role allows %s on %s%s, which it must not", g.action, g.resource, when(g.conditions)))
		}
	}
	for _, g := range want {
		if !slices.Contains(got, g) {
			probs = append(probs, fmt.Sprintf("the worker role does not allow %s on %s%s", g.action, g.resource, when(g.conditions)))
		}
	}
	found := false
	for _, ip := range m.resources("aws_iam_instance_profile") {
		if r, _ := m.attr(ip.Body, "role"); slices.Contains(roleRefs, r) {
			found = true
		}
	}
	if !found {
		probs = append(probs, "no aws_iam_instance_profile holds "+role)
	}
	return probs
}

// workerGrants are the object grants the worker role must have, on the
// bucket arn.
func workerGrants(arn string) []grant {
	var want []grant
	for _, prefix := range []string{storeShared, storeRuns} {
		want = append(want, grant{"s3:GetObject", arn + "/" + prefix + "*", ""})
	}
	for _, d := range workerWrites {
		want = append(want, grant{"s3:PutObject", arn + "/" + storeRuns + "*/" + d + "/*", ""})
	}
	return append(want, grant{"s3:DeleteObject", arn + "/" + storeRuns + "*/leases/*", ""})
}

func when(conds string) string {
	if conds == "" {
		return ""
	}
	return " when " + conds
}

// ---------------------------------------------------------------------------
// Network

// checkNoIngress: nothing in the module lets traffic in.
func (m *module) checkNoIngress() []string {
	var probs []string
	for _, b := range m.resources("") {
		typ := b.Labels[0]
		where := fmt.Sprintf("%s (%s)", address(b), pos(b.DefRange()))
		switch {
		case strings.Contains(typ, "ingress"):
			probs = append(probs, where+" is an ingress rule")
		case typ == "aws_security_group_rule":
			if t, _ := m.attr(b.Body, "type"); t != "egress" {
				probs = append(probs, fmt.Sprintf("%s has type %q, want egress", where, t))
			}
		case typ == "aws_security_group" || typ == "aws_default_security_group":
			if _, ok := b.Body.Attributes["ingress"]; ok {
				probs = append(probs, where+" sets ingress")
			}
			if n := len(blocksOf(b.Body, "ingress")) + len(dynamicOf(b.Body, "ingress")); n > 0 {
				probs = append(probs, fmt.Sprintf("%s has %d ingress block(s)", where, n))
			}
		}
	}
	return probs
}

// checkEgress: every egress rule lets out TCP to port 443 only, and there is
// at least one (the workers reach S3 through it).
func (m *module) checkEgress() []string {
	var probs []string
	rules := 0
	check := func(where string, body *hclsyntax.Body, protoAttr string) {
		rules++
		proto, _ := m.attr(body, protoAttr)
		from, _ := m.attr(body, "from_port")
		to, _ := m.attr(body, "to_port")
		if (proto != "tcp" && proto != "6") || from != "443" || to != "443" {
			probs = append(probs, fmt.Sprintf("%s lets out protocol %q ports %s-%s, want tcp 443 only", where, proto, from, to))
		}
	}
	for _, b := range m.resources("") {
		where := fmt.Sprintf("%s (%s)", address(b), pos(b.DefRange()))
		switch b.Labels[0] {
		case "aws_vpc_security_group_egress_rule":
			check(where, b.Body, "ip_protocol")
		case "aws_security_group_rule":
			if t, _ := m.attr(b.Body, "type"); t == "egress" {
				check(where, b.Body, "protocol")
			}
		case "aws_security_group", "aws_default_security_group":
			if a, ok := b.Body.Attributes["egress"]; ok {
				probs = append(probs, fmt.Sprintf("%s sets egress as an attribute (%s), which cannot be checked", where, pos(a.SrcRange)))
			}
			for _, d := range dynamicOf(b.Body, "egress") {
				probs = append(probs, fmt.Sprintf("%s has a dynamic egress block (%s), which cannot be checked", where, pos(d.DefRange())))
			}
			for _, e := range blocksOf(b.Body, "egress") {
				check(fmt.Sprintf("%s egress block (%s)", address(b), pos(e.DefRange())), e.Body, "protocol")
			}
		}
	}
	if rules == 0 {
		probs = append(probs, "no egress rule: the workers could not reach S3")
	}
	return probs
}

// ---------------------------------------------------------------------------
// The bucket

// forBucket returns the resources of type typ whose bucket attribute refers to
// aws_s3_bucket.name.
func (m *module) forBucket(typ, name string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	refs := []string{"${aws_s3_bucket." + name + ".id}", "${aws_s3_bucket." + name + ".bucket}"}
	for _, b := range m.resources(typ) {
		if v, _ := m.attr(b.Body, "bucket"); slices.Contains(refs, v) {
			out = append(out, b)
		}
	}
	return out
}

// buckets returns the names of the module's aws_s3_bucket resources.
func (m *module) buckets() []string {
	var out []string
	for _, b := range m.resources("aws_s3_bucket") {
		out = append(out, b.Labels[1])
	}
	return out
}

// checkBucketSettings: every bucket blocks public access with all four
// settings, is encrypted, has ACLs disabled, and refuses plain HTTP.
func (m *module) checkBucketSettings(p *policySet) []string {
	var probs []string
	if len(m.buckets()) == 0 {
		probs = append(probs, "no aws_s3_bucket")
	}
	for _, name := range m.buckets() {
		bucket := "aws_s3_bucket." + name
		pabs := m.forBucket("aws_s3_bucket_public_access_block", name)
		if len(pabs) == 0 {
			probs = append(probs, bucket+" has no public access block")
		}
		for _, b := range pabs {
			for _, flag := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
				if v, _ := m.attr(b.Body, flag); v != "true" {
					probs = append(probs, fmt.Sprintf("%s (%s) sets %s = %q, want true", address(b), pos(b.DefRange()), flag, v))
				}
			}
		}

		sses := m.forBucket("aws_s3_bucket_server_side_encryption_configuration", name)
		if len(sses) == 0 {
			probs = append(probs, bucket+" has no server-side encryption configuration")
		}
		for _, b := range sses {
			algs := 0
			for _, r := range blocksOf(b.Body, "rule") {
				for _, d := range blocksOf(r.Body, "apply_server_side_encryption_by_default") {
					alg, _ := m.attr(d.Body, "sse_algorithm")
					if alg != "AES256" && alg != "aws:kms" && alg != "aws:kms:dsse" {
						probs = append(probs, fmt.Sprintf("%s (%s) has sse_algorithm %q", address(b), pos(d.DefRange()), alg))
					}
					algs++
				}
			}
			if algs == 0 {
				probs = append(probs, fmt.Sprintf("%s (%s) sets no default encryption", address(b), pos(b.DefRange())))
			}
		}

		owns := m.forBucket("aws_s3_bucket_ownership_controls", name)
		if len(owns) == 0 {
			probs = append(probs, bucket+" has no ownership controls")
		}
		for _, b := range owns {
			for _, r := range blocksOf(b.Body, "rule") {
				if v, _ := m.attr(r.Body, "object_ownership"); v != "BucketOwnerEnforced" {
					probs = append(probs, fmt.Sprintf("%s (%s) sets object_ownership %q, want BucketOwnerEnforced", address(b), pos(r.DefRange()), v))
				}
			}
		}

		tls := false
		for _, b := range m.forBucket("aws_s3_bucket_policy", name) {
			stmts, _ := p.of(address(b) + ".policy")
			for _, st := range stmts {
				if st.effect == "Deny" && slices.Contains(st.actions, "s3:*") &&
					slices.Contains(st.principals, "*:*") &&
					slices.Contains(st.resources, "${"+bucket+".arn}") &&
					slices.Contains(st.resources, "${"+bucket+".arn}/*") &&
					len(st.conditions) == 1 &&
					st.conditions[0].String() == (condition{"Bool", "aws:SecureTransport", []string{"false"}}).String() {
					tls = true
				}
			}
		}
		if !tls {
			probs = append(probs, bucket+" has no bucket policy denying every s3 action to everyone when aws:SecureTransport is false")
		}
	}
	return probs
}

// ---------------------------------------------------------------------------
// Evaluation under the variables' defaults

// functions are the Terraform functions that the checks may need to evaluate
// variables, locals and dynamic blocks.
var functions = map[string]function.Function{
	"coalesce": stdlib.CoalesceFunc,
	"concat":   stdlib.ConcatFunc,
	"floor":    stdlib.FloorFunc,
	"length":   stdlib.LengthFunc,
	"merge":    stdlib.MergeFunc,
	"regex":    stdlib.RegexFunc,
	"sort":     stdlib.SortFunc,
	"tolist":   stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
	"toset":    stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
}

// evalContext gives var.* their defaults (or the overrides) converted to their
// declared types, and local.* the values that can be worked out from those;
// a local that needs anything else (data sources, resources) is unknown.
func (m *module) evalContext(overrides map[string]cty.Value) (*hcl.EvalContext, error) {
	vars := map[string]cty.Value{}
	for _, b := range m.find("variable", "") {
		name := b.Labels[0]
		ty := cty.DynamicPseudoType
		if a, ok := b.Body.Attributes["type"]; ok {
			t, diags := typeexpr.TypeConstraint(a.Expr)
			if diags.HasErrors() {
				return nil, diags
			}
			ty = t
		}
		v := cty.UnknownVal(ty)
		if a, ok := b.Body.Attributes["default"]; ok {
			d, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				return nil, diags
			}
			v = d
		}
		if o, ok := overrides[name]; ok {
			v = o
		}
		cv, err := convert.Convert(v, ty)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", name, err)
		}
		vars[name] = cv
	}
	for name := range overrides {
		if _, ok := vars[name]; !ok {
			return nil, fmt.Errorf("no variable %s", name)
		}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: functions,
	}
	attrs := map[string]*hclsyntax.Attribute{}
	for _, b := range m.blocks {
		if b.Type == "locals" {
			for name, a := range b.Body.Attributes {
				attrs[name] = a
			}
		}
	}
	locals := map[string]cty.Value{}
	for name := range attrs {
		locals[name] = cty.DynamicVal
	}
	// Each round settles the locals whose inputs are known; a chain of n
	// locals takes n rounds.
	for range len(attrs) + 1 {
		ctx.Variables["local"] = cty.ObjectVal(locals)
		changed := false
		for name, a := range attrs {
			if locals[name].IsWhollyKnown() {
				continue
			}
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() || !v.IsWhollyKnown() {
				continue
			}
			locals[name] = v
			changed = true
		}
		if !changed {
			break
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return ctx, nil
}

// expanded is one block as Terraform would see it after dynamic blocks are
// expanded, with the context its expressions are evaluated in.
type expanded struct {
	body  *hclsyntax.Body
	ctx   *hcl.EvalContext
	where string
}

// expand returns the blocks of type typ in body, static ones and those that
// dynamic blocks generate under ctx.
func expand(body *hclsyntax.Body, typ string, ctx *hcl.EvalContext) ([]expanded, error) {
	var out []expanded
	for _, b := range blocksOf(body, typ) {
		out = append(out, expanded{b.Body, ctx, pos(b.DefRange())})
	}
	for _, d := range dynamicOf(body, typ) {
		a, ok := d.Body.Attributes["for_each"]
		if !ok {
			return nil, fmt.Errorf("dynamic %q (%s) has no for_each", typ, pos(d.DefRange()))
		}
		each, diags := a.Expr.Value(ctx)
		if diags.HasErrors() {
			return nil, fmt.Errorf("dynamic %q (%s): %s", typ, pos(d.DefRange()), diags.Error())
		}
		if !each.IsWhollyKnown() || each.IsNull() || !each.CanIterateElements() {
			return nil, fmt.Errorf("dynamic %q (%s): for_each is not a known collection", typ, pos(d.DefRange()))
		}
		iter := typ
		if it, ok := d.Body.Attributes["iterator"]; ok {
			iter = hcl.ExprAsKeyword(it.Expr)
		}
		contents := blocksOf(d.Body, "content")
		if len(contents) != 1 {
			return nil, fmt.Errorf("dynamic %q (%s) has %d content blocks", typ, pos(d.DefRange()), len(contents))
		}
		for it := each.ElementIterator(); it.Next(); {
			k, v := it.Element()
			child := ctx.NewChild()
			child.Variables = map[string]cty.Value{iter: cty.ObjectVal(map[string]cty.Value{"key": k, "value": v})}
			out = append(out, expanded{contents[0].Body, child, pos(contents[0].DefRange())})
		}
	}
	return out, nil
}

// value evaluates attribute name of an expanded block; ok is false when it is
// absent or null.
func (e expanded) value(name string) (cty.Value, bool, error) {
	a, ok := e.body.Attributes[name]
	if !ok {
		return cty.NilVal, false, nil
	}
	v, diags := a.Expr.Value(e.ctx)
	if diags.HasErrors() {
		return cty.NilVal, false, fmt.Errorf("%s (%s): %s", name, pos(a.SrcRange), diags.Error())
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, false, fmt.Errorf("%s (%s) is not known before apply", name, pos(a.SrcRange))
	}
	return v, !v.IsNull(), nil
}

func (e expanded) str(name string) (string, error) {
	v, ok, err := e.value(name)
	if err != nil || !ok {
		return "", err
	}
	v, err = convert.Convert(v, cty.String)
	if err != nil {
		return "", fmt.Errorf("%s (%s): %w", name, e.where, err)
	}
	return v.AsString(), nil
}

func (e expanded) days(name string) (int, error) {
	v, ok, err := e.value(name)
	if err != nil || !ok {
		return 0, err
	}
	v, err = convert.Convert(v, cty.Number)
	if err != nil {
		return 0, fmt.Errorf("%s (%s): %w", name, e.where, err)
	}
	n, acc := v.AsBigFloat().Int64()
	if acc != big.Exact {
		return 0, fmt.Errorf("%s (%s) is not a whole number", name, e.where)
	}
	return int(n), nil
}

// lifecycleRule is one rule of a bucket's lifecycle configuration, evaluated.
type lifecycleRule struct {
	id         string
	where      string
	enabled    bool
	prefix     string // "" is the whole bucket
	expireDays int    // 0: current objects do not expire by age
	expireDate string // set: current objects expire on that date
	abortDays  int    // 0: incomplete multipart uploads are not aborted
}

func (r lifecycleRule) expires() bool { return r.expireDays > 0 || r.expireDate != "" }

// lifecycle evaluates the lifecycle rules of aws_s3_bucket.name under ctx.
func (m *module) lifecycle(name string, ctx *hcl.EvalContext) ([]lifecycleRule, error) {
	var rules []lifecycleRule
	for _, b := range m.forBucket("aws_s3_bucket_lifecycle_configuration", name) {
		rs, err := expand(b.Body, "rule", ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			rule, err := lifecycleOf(r)
			if err != nil {
				return nil, err
			}
			rules = append(rules, rule)
		}
	}
	return rules, nil
}

func lifecycleOf(r expanded) (lifecycleRule, error) {
	rule := lifecycleRule{where: r.where}
	var err error
	if rule.id, err = r.str("id"); err != nil {
		return rule, err
	}
	status, err := r.str("status")
	if err != nil {
		return rule, err
	}
	rule.enabled = status == "Enabled"
	// The prefix may be on the rule itself (older form), in filter, or in
	// filter's and block.
	if rule.prefix, err = r.str("prefix"); err != nil {
		return rule, err
	}
	filters, err := expand(r.body, "filter", r.ctx)
	if err != nil {
		return rule, err
	}
	for _, f := range filters {
		p, err := f.str("prefix")
		if err != nil {
			return rule, err
		}
		ands, err := expand(f.body, "and", f.ctx)
		if err != nil {
			return rule, err
		}
		for _, a := range ands {
			ap, err := a.str("prefix")
			if err != nil {
				return rule, err
			}
			p += ap
		}
		rule.prefix += p
	}
	exps, err := expand(r.body, "expiration", r.ctx)
	if err != nil {
		return rule, err
	}
	for _, e := range exps {
		if rule.expireDays, err = e.days("days"); err != nil {
			return rule, err
		}
		if rule.expireDate, err = e.str("date"); err != nil {
			return rule, err
		}
	}
	aborts, err := expand(r.body, "abort_incomplete_multipart_upload", r.ctx)
	if err != nil {
		return rule, err
	}
	for _, a := range aborts {
		if rule.abortDays, err = a.days("days_after_initiation"); err != nil {
			return rule, err
		}
	}
	return rule, nil
}

// overlaps reports whether objects under prefix p can be under q, or the
// other way round.
func overlaps(p, q string) bool { return strings.HasPrefix(p, q) || strings.HasPrefix(q, p) }

// checkLifecycle, under the variables' defaults: an enabled rule expires
// runs/ after runDays, no enabled rule expires anything under cas/, and
// incomplete multipart uploads anywhere in the bucket are aborted within
// abortDays.
func (m *module) checkLifecycle(runDays, abortDays int) []string {
	ctx, err := m.evalContext(nil)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	for _, name := range m.buckets() {
		bucket := "aws_s3_bucket." + name
		rules, err := m.lifecycle(name, ctx)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s lifecycle: %v", bucket, err))
			continue
		}
		runs, aborts := false, false
		for _, r := range rules {
			if !r.enabled {
				continue
			}
			if r.expires() && overlaps(r.prefix, storeShared) {
				probs = append(probs, fmt.Sprintf("%s lifecycle rule %q (%s) expires objects under %q, so shared inputs under cas/ expire by default", bucket, r.id, r.where, r.prefix))
			}
			if r.prefix == storeRuns && r.expireDays == runDays {
				runs = true
			}
			if r.prefix == "" && r.abortDays > 0 && r.abortDays <= abortDays {
				aborts = true
			}
		}
		if !runs {
			probs = append(probs, fmt.Sprintf("%s has no enabled lifecycle rule expiring %s after %d days", bucket, storeRuns, runDays))
		}
		if !aborts {
			probs = append(probs, fmt.Sprintf("%s has no enabled lifecycle rule aborting incomplete multipart uploads within %d days", bucket, abortDays))
		}
	}
	return probs
}

// ---------------------------------------------------------------------------
// Tags and outputs

// untaggable are the resource types of the AWS provider that take no tags.
var untaggable = map[string]bool{
	"aws_iam_role_policy":                                true,
	"aws_iam_role_policy_attachment":                     true,
	"aws_s3_bucket_lifecycle_configuration":              true,
	"aws_s3_bucket_ownership_controls":                   true,
	"aws_s3_bucket_policy":                               true,
	"aws_s3_bucket_public_access_block":                  true,
	"aws_s3_bucket_server_side_encryption_configuration": true,
	"aws_s3_bucket_versioning":                           true,
}

// checkTags: every resource that takes tags has tags = local.tags, and
// local.tags is var.tags with burst:managed = "true" over it.
func (m *module) checkTags() []string {
	var probs []string
	for _, b := range m.resources("") {
		if untaggable[b.Labels[0]] {
			continue
		}
		if v, _ := m.attr(b.Body, "tags"); v != "${local.tags}" {
			probs = append(probs, fmt.Sprintf("%s (%s) has tags %q, want local.tags", address(b), pos(b.DefRange()), v))
		}
	}
	user := cty.MapVal(map[string]cty.Value{"team": cty.StringVal("imaging"), managedTag: cty.StringVal("false")})
	ctx, err := m.evalContext(map[string]cty.Value{"tags": user})
	if err != nil {
		return append(probs, err.Error())
	}
	tags := ctx.Variables["local"].GetAttr("tags")
	if !tags.IsWhollyKnown() || tags.IsNull() {
		return append(probs, "local.tags cannot be worked out from var.tags")
	}
	tags, err = convert.Convert(tags, cty.Map(cty.String))
	if err != nil {
		return append(probs, fmt.Sprintf("local.tags is not a map of strings: %v", err))
	}
	want := cty.MapVal(map[string]cty.Value{"team": cty.StringVal("imaging"), managedTag: cty.StringVal("true")})
	if !tags.RawEquals(want) {
		probs = append(probs, fmt.Sprintf("with var.tags = %s, local.tags is %s, want %s", user.GoString(), tags.GoString(), want.GoString()))
	}
	return probs
}

// checkOutputs: each output exists, says what it is, and has the given value.
func (m *module) checkOutputs(want map[string]string) []string {
	var probs []string
	got := map[string]*hclsyntax.Block{}
	for _, b := range m.find("output", "") {
		got[b.Labels[0]] = b
	}
	for name, value := range want {
		b, ok := got[name]
		if !ok {
			probs = append(probs, fmt.Sprintf("output %q is missing", name))
			continue
		}
		if d, _ := m.attr(b.Body, "description"); d == "" {
			probs = append(probs, fmt.Sprintf("output %q has no description", name))
		}
		if v, _ := m.attr(b.Body, "value"); v != value {
			probs = append(probs, fmt.Sprintf("output %q is %s, want %s", name, v, value))
		}
	}
	return probs
}
