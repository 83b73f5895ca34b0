package terraform_test

// Tests of the account setup in this folder: the least-privilege facts hold
// for the module as written (TestModule...), and every check reports a module
// that breaks them, both small modules written here and the real one with one
// line changed (TestChecksReport...).

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/slicerburst/burst/provision"
)

// cliActions is every AWS API action that the burst CLI calls, and so exactly
// what aws_iam_policy.cli allows.
var cliActions = []string{
	"ec2:CreateFleet",
	"ec2:CreateLaunchTemplate",
	"ec2:CreateTags",
	"ec2:DeleteLaunchTemplate",
	"ec2:DescribeImages",
	"ec2:DescribeInstanceTypes",
	"ec2:DescribeInstances",
	"ec2:DescribeLaunchTemplates",
	"ec2:DescribeSecurityGroups",
	"ec2:DescribeSpotPriceHistory",
	"ec2:DescribeSubnets",
	"ec2:RunInstances",
	"ec2:TerminateInstances",
	"iam:CreateServiceLinkedRole",
	"iam:PassRole",
	"pricing:GetProducts",
	"s3:DeleteObject",
	"s3:GetObject",
	"s3:ListBucket",
	"s3:PutObject",
}

// outputs are the module's outputs and their values. `burst init --terraform`
// reads them by these names.
var outputs = map[string]string{
	"region":               "${local.region}",
	"bucket":               "${aws_s3_bucket.store.id}",
	"instance_profile":     "${aws_iam_instance_profile.worker.name}",
	"instance_profile_arn": "${aws_iam_instance_profile.worker.arn}",
	"worker_role_arn":      "${aws_iam_role.worker.arn}",
	"security_group_id":    "${aws_security_group.worker.id}",
	"subnet_ids":           "${local.subnet_ids}",
	"cli_policy_arn":       "${aws_iam_policy.cli.arn}",
}

const (
	runRetentionDays = 30 // the default of var.run_retention_days
	abortUploadDays  = 7
)

// problems runs every check on m.
func problems(m *module) []string {
	p := m.policies()
	var out []string
	out = append(out, p.problems...)
	out = append(out, checkWildcards(p)...)
	out = append(out, checkActionSet(p, "aws_iam_policy."+cliName+".policy", cliActions)...)
	out = append(out, checkPassRole(p)...)
	out = append(out, m.checkWorker(p)...)
	out = append(out, m.checkNoIngress()...)
	out = append(out, m.checkEgress()...)
	out = append(out, m.checkBucketSettings(p)...)
	out = append(out, m.checkLifecycle(runRetentionDays, abortUploadDays)...)
	out = append(out, m.checkTags()...)
	out = append(out, m.checkOutputs(outputs)...)
	sort.Strings(out)
	return out
}

func load(t *testing.T) *module {
	t.Helper()
	m, err := loadModule(".")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModuleHasNoProblems(t *testing.T) {
	m := load(t)
	names := make([]string, 0, len(m.src))
	for name := range m.src {
		names = append(names, name)
	}
	sort.Strings(names)
	t.Logf("parsed %d files: %s; %d top-level blocks", len(names), strings.Join(names, " "), len(m.blocks))
	for _, p := range problems(m) {
		t.Error(p)
	}
}

func TestModuleCLIPolicyActions(t *testing.T) {
	p := load(t).policies()
	stmts, ok := p.of("aws_iam_policy.cli.policy")
	if !ok {
		t.Fatal("aws_iam_policy.cli has no policy that can be checked")
	}
	got := allowedActions(stmts)
	t.Logf("the CLI policy allows %d actions:\n  %s", len(got), strings.Join(got, "\n  "))
	if !slices.Equal(got, cliActions) {
		t.Errorf("the CLI policy allows\n  %v\nwant\n  %v", got, cliActions)
	}
	for _, st := range stmts {
		if !st.allows() {
			continue
		}
		for _, r := range st.resources {
			if strings.HasPrefix(r, "${aws_s3_bucket.") && !strings.Contains(r, "/runs/*") &&
				!strings.Contains(r, "/cas/*") && r != "${aws_s3_bucket.store.arn}" {
				t.Errorf("%s reaches %s, outside the run store's prefixes", st.name(), r)
			}
		}
	}
}

func TestModuleWorkerGrants(t *testing.T) {
	m := load(t)
	p := m.policies()
	var stmts []statement
	for _, rp := range m.resources("aws_iam_role_policy") {
		s, _ := p.of(address(rp) + ".policy")
		stmts = append(stmts, s...)
	}
	got := grants(stmts)
	var lines []string
	for _, g := range got {
		lines = append(lines, g.action+" on "+g.resource+when(g.conditions))
	}
	t.Logf("the worker role allows:\n  %s", strings.Join(lines, "\n  "))
	if want := len(workerGrants("x")) + 1; len(got) != want {
		t.Errorf("the worker role has %d grants, want %d (reads of 2 prefixes, writes of %d folders, lease deletes, and ListBucket)", len(got), want, len(workerWrites))
	}
}

// The rule for cas/ exists only when cas_retention_days is set, and the rule
// for runs/ follows run_retention_days.
func TestModuleLifecycleFollowsVariables(t *testing.T) {
	m := load(t)
	for _, tc := range []struct {
		name     string
		vars     map[string]cty.Value
		runDays  int
		casDays  int // 0: no rule expires cas/
		wantRule int
	}{
		{"defaults", nil, 30, 0, 2},
		{"cas kept 90 days", map[string]cty.Value{"cas_retention_days": cty.NumberIntVal(90)}, 30, 90, 3},
		{"runs kept 7 days", map[string]cty.Value{"run_retention_days": cty.NumberIntVal(7)}, 7, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, err := m.evalContext(tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			rules, err := m.lifecycle(bucketName, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != tc.wantRule {
				t.Errorf("%d rules, want %d: %+v", len(rules), tc.wantRule, rules)
			}
			casDays := 0
			runDays := 0
			for _, r := range rules {
				if !r.enabled {
					t.Errorf("rule %q is not enabled", r.id)
				}
				switch {
				case r.prefix == storeRuns:
					runDays = r.expireDays
				case r.prefix == storeShared:
					casDays = r.expireDays
				case r.expires():
					t.Errorf("rule %q expires objects under %q", r.id, r.prefix)
				}
			}
			if runDays != tc.runDays || casDays != tc.casDays {
				t.Errorf("runs/ expire after %d days and cas/ after %d, want %d and %d", runDays, casDays, tc.runDays, tc.casDays)
			}
		})
	}
}

// snippet parses one in-memory file.
func snippet(t *testing.T, src string) *module {
	t.Helper()
	m, err := parseModule(map[string][]byte{"snippet.tf": []byte(src)})
	if err != nil {
		t.Fatalf("snippet does not parse: %v\n%s", err, src)
	}
	return m
}

func policyProblems(m *module) []string {
	p := m.policies()
	return append(p.problems, checkWildcards(p)...)
}

func passRoleProblems(m *module) []string { return checkPassRole(m.policies()) }

func ingressProblems(m *module) []string { return m.checkNoIngress() }

func egressProblems(m *module) []string { return m.checkEgress() }

// TestChecksReportSnippets feeds each check a small module that breaks its
// rule and one that keeps it.
func TestChecksReportSnippets(t *testing.T) {
	const sg = `
resource "aws_security_group" "worker" {
  name   = "w"
  vpc_id = "vpc-1"
}
`
	const egress443 = `
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.worker.id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}
`
	const passRole = `
data "aws_iam_policy_document" "cli" {
  statement {
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.worker.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
}
`
	for _, tc := range []struct {
		name  string
		check func(*module) []string
		src   string
		want  string // "" when the snippet keeps the rule
	}{
		{"security group without ingress", ingressProblems, sg + egress443, ""},
		{"ingress rule resource", ingressProblems, sg + `
resource "aws_vpc_security_group_ingress_rule" "ssh" {
  security_group_id = aws_security_group.worker.id
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = "10.0.0.0/8"
}
`, "aws_vpc_security_group_ingress_rule.ssh (snippet.tf:7) is an ingress rule"},
		{"inline ingress block", ingressProblems, `
resource "aws_security_group" "worker" {
  ingress {
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
`, "has 1 ingress block(s)"},
		{"dynamic ingress block", ingressProblems, `
resource "aws_security_group" "worker" {
  dynamic "ingress" {
    for_each = [22]
    content {
      from_port = ingress.value
    }
  }
}
`, "has 1 ingress block(s)"},
		{"security group rule of type ingress", ingressProblems, sg + `
resource "aws_security_group_rule" "in" {
  type              = "ingress"
  security_group_id = aws_security_group.worker.id
  from_port         = 0
  to_port           = 0
  protocol          = "-1"
}
`, `has type "ingress", want egress`},

		{"egress on 443 only", egressProblems, sg + egress443, ""},
		{"egress on every protocol", egressProblems, sg + strings.Replace(egress443, `"tcp"`, `"-1"`, 1), `lets out protocol "-1" ports 443-443`},
		{"egress on port 22", egressProblems, sg + strings.Replace(egress443, "to_port           = 443", "to_port           = 22", 1), "ports 443-22"},
		{"inline egress to everything", egressProblems, `
resource "aws_security_group" "worker" {
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
`, `lets out protocol "-1" ports 0-0`},
		{"no egress at all", egressProblems, sg, "no egress rule"},

		{"scoped actions", policyProblems, `
data "aws_iam_policy_document" "ok" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.store.arn}/runs/*"]
  }
  statement {
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }
  statement {
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["*"]
  }
}
`, ""},
		{"wildcard action in a policy document", policyProblems, `
data "aws_iam_policy_document" "bad" {
  statement {
    actions   = ["s3:Get*"]
    resources = ["${aws_s3_bucket.store.arn}/runs/*"]
  }
}
`, `data.aws_iam_policy_document.bad statement at snippet.tf:3 allows the wildcard action "s3:Get*"`},
		{"wildcard action in jsonencode", policyProblems, `
resource "aws_iam_policy" "bad" {
  name = "bad"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "All"
      Effect   = "Allow"
      Action   = "*"
      Resource = "*"
    }]
  })
}
`, `aws_iam_policy.bad.policy statement "All" (snippet.tf:4) allows the wildcard action "*"`},
		{"wildcard action in literal JSON", policyProblems, `
resource "aws_iam_role_policy" "bad" {
  role   = "r"
  policy = <<-EOT
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": ["ec2:*"], "Resource": ["*"]}]}
  EOT
}
`, `allows the wildcard action "ec2:*"`},
		{"s3 action on every resource", policyProblems, `
data "aws_iam_policy_document" "bad" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["*"]
  }
}
`, `allows s3:GetObject on every resource ("*"), not only the run store`},
		{"terminate on every resource", policyProblems, `
data "aws_iam_policy_document" "bad" {
  statement {
    actions   = ["ec2:TerminateInstances"]
    resources = ["*"]
  }
}
`, `allows ec2:TerminateInstances on every resource ("*"); only ec2:Describe* calls may be`},
		{"not_actions", policyProblems, `
data "aws_iam_policy_document" "bad" {
  statement {
    not_actions = ["iam:*"]
    resources   = ["*"]
  }
}
`, "allows NotAction"},
		{"actions from a variable", policyProblems, `
data "aws_iam_policy_document" "bad" {
  statement {
    actions   = var.actions
    resources = ["*"]
  }
}
`, "actions at snippet.tf:4 is var.actions, not a list written out"},
		{"policy that cannot be read", policyProblems, `
resource "aws_iam_policy" "bad" {
  policy = file("policy.json")
}
`, `aws_iam_policy.bad.policy (snippet.tf:3) is file("policy.json"): not a policy document`},

		{"pass the worker role only", passRoleProblems, passRole, ""},
		{"pass any role", passRoleProblems, strings.Replace(passRole, "[aws_iam_role.worker.arn]", `["*"]`, 1), "lets iam:PassRole pass [*], want only ${aws_iam_role.worker.arn}"},
		{"pass the worker role and another", passRoleProblems, strings.Replace(passRole, "[aws_iam_role.worker.arn]", `[aws_iam_role.worker.arn, aws_iam_role.admin.arn]`, 1), "want only ${aws_iam_role.worker.arn}"},
		{"pass role to any service", passRoleProblems, strings.Replace(passRole, `"StringEquals"`, `"StringLike"`, 1), "want only StringEquals iam:PassedToService [ec2.amazonaws.com]"},
		{"pass role in two statements", passRoleProblems, passRole + strings.Replace(passRole, `"cli"`, `"other"`, 1), "2 statements allow iam:PassRole"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.check(snippet(t, tc.src))
			if tc.want == "" {
				if len(got) > 0 {
					t.Errorf("reported %q for a snippet that keeps the rule", got)
				}
				return
			}
			if !containsProblem(got, tc.want) {
				t.Errorf("reported %q, want a problem containing %q", got, tc.want)
			}
		})
	}
}

func containsProblem(probs []string, want string) bool {
	for _, p := range probs {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}

// mutate returns the module with one change to one of its files: old must
// occur there exactly once, so that a change to the module that makes a
// mutation miss its target fails here rather than passing unnoticed.
func mutate(t *testing.T, file, old, new string) *module {
	t.Helper()
	files := map[string][]byte{}
	names, err := filepath.Glob("*.tf")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	src, ok := files[file]
	if !ok {
		t.Fatalf("no file %s", file)
	}
	if n := strings.Count(string(src), old); n != 1 {
		t.Fatalf("%s contains %q %d times, want once", file, old, n)
	}
	files[file] = []byte(strings.Replace(string(src), old, new, 1))
	m, err := parseModule(files)
	if err != nil {
		t.Fatalf("%s no longer parses: %v", file, err)
	}
	return m
}

// TestChecksReportMutations changes one line of the real module at a time and
// expects the full set of checks to report it.
func TestChecksReportMutations(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, want string
	}{
		{"worker may list every bucket", "worker.tf",
			`actions = ["s3:GetObject"]`,
			`actions = ["s3:GetObject", "s3:ListAllMyBuckets"]`,
			"the worker role allows s3:ListAllMyBuckets on ${aws_s3_bucket.store.arn}/runs/*, which it must not"},
		{"worker may write anywhere in the bucket", "worker.tf",
			`"${aws_s3_bucket.store.arn}/runs/*/logs/*",`, `"${aws_s3_bucket.store.arn}/*",`,
			"the worker role allows s3:PutObject on ${aws_s3_bucket.store.arn}/*"},
		{"worker may rewrite runs (their scripts)", "worker.tf",
			`"${aws_s3_bucket.store.arn}/runs/*/workers/*",`, `"${aws_s3_bucket.store.arn}/runs/*",`,
			"the worker role allows s3:PutObject on ${aws_s3_bucket.store.arn}/runs/*, which it must not"},
		{"worker may write shared files", "worker.tf",
			`actions = ["s3:GetObject"]`, `actions = ["s3:GetObject", "s3:PutObject"]`,
			"the worker role allows s3:PutObject on ${aws_s3_bucket.store.arn}/cas/*, which it must not"},
		{"worker may delete results", "worker.tf",
			`resources = ["${aws_s3_bucket.store.arn}/runs/*/leases/*"]`, `resources = ["${aws_s3_bucket.store.arn}/runs/*"]`,
			"the worker role allows s3:DeleteObject on ${aws_s3_bucket.store.arn}/runs/*, which it must not"},
		{"worker cannot write its heartbeats", "worker.tf",
			`"${aws_s3_bucket.store.arn}/runs/*/workers/*",`, ``,
			"the worker role does not allow s3:PutObject on ${aws_s3_bucket.store.arn}/runs/*/workers/*"},
		{"worker lists without a prefix condition", "worker.tf",
			`variable = "s3:prefix"`, `variable = "s3:delimiter"`,
			"the worker role does not allow s3:ListBucket on ${aws_s3_bucket.store.arn} when StringLike s3:prefix"},
		{"worker role assumed by lambda", "worker.tf",
			`identifiers = ["ec2.amazonaws.com"]`, `identifiers = ["lambda.amazonaws.com"]`,
			"want only Service:ec2.amazonaws.com"},
		{"worker role with a managed policy", "worker.tf",
			`resource "aws_iam_instance_profile" "worker" {`,
			"resource \"aws_iam_role_policy_attachment\" \"admin\" {\n  role       = aws_iam_role.worker.name\n  policy_arn = \"arn:aws:iam::aws:policy/AdministratorAccess\"\n}\n\nresource \"aws_iam_instance_profile\" \"worker\" {",
			"aws_iam_role_policy_attachment.admin (worker.tf:"},
		{"CLI calls one more action", "cli.tf",
			`"ec2:DescribeImages",`, `"ec2:DescribeImages", "ec2:DescribeAccountAttributes",`,
			"aws_iam_policy.cli.policy allows ec2:DescribeAccountAttributes, which is not in the expected list"},
		{"CLI lost an action", "cli.tf",
			`actions   = ["ec2:TerminateInstances"]`, `actions   = ["ec2:StopInstances"]`,
			"aws_iam_policy.cli.policy does not allow ec2:TerminateInstances"},
		{"CLI terminates anything", "cli.tf",
			`resources = ["${local.ec2_arn}:instance/*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/burst:run"`,
			`resources = ["*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/burst:run"`,
			`allows ec2:TerminateInstances on every resource ("*")`},
		{"CLI reads every bucket", "cli.tf",
			`resources = [aws_s3_bucket.store.arn]`, `resources = ["*"]`,
			`allows s3:ListBucket on every resource ("*"), not only the run store`},
		{"CLI passes any role", "cli.tf",
			`resources = [aws_iam_role.worker.arn]`, `resources = ["arn:aws:iam::*:role/*"]`,
			"lets iam:PassRole pass [arn:aws:iam::*:role/*]"},
		{"CLI wildcard action", "cli.tf",
			`actions   = ["ec2:CreateLaunchTemplate"]`, `actions   = ["ec2:*LaunchTemplate"]`,
			`allows the wildcard action "ec2:*LaunchTemplate"`},
		{"SSH ingress", "network.tf",
			`resource "aws_vpc_security_group_egress_rule" "worker_https_ipv4" {`,
			"resource \"aws_vpc_security_group_ingress_rule\" \"ssh\" {\n  security_group_id = aws_security_group.worker.id\n  ip_protocol       = \"tcp\"\n  from_port         = 22\n  to_port           = 22\n  cidr_ipv4         = \"0.0.0.0/0\"\n}\n\nresource \"aws_vpc_security_group_egress_rule\" \"worker_https_ipv4\" {",
			"aws_vpc_security_group_ingress_rule.ssh (network.tf:"},
		{"a comment changes nothing", "network.tf",
			"cidr_ipv6         = \"::/0\"", "cidr_ipv6         = \"::/0\"\n  # all\n",
			""},
		{"egress over HTTP", "network.tf",
			"description       = \"HTTPS to S3 over IPv6\"\n  ip_protocol       = \"tcp\"\n  from_port         = 443\n  to_port           = 443",
			"description       = \"HTTPS to S3 over IPv6\"\n  ip_protocol       = \"tcp\"\n  from_port         = 80\n  to_port           = 443",
			"aws_vpc_security_group_egress_rule.worker_https_ipv6 (network.tf:"},
		{"public policies allowed", "bucket.tf",
			"block_public_policy     = true", "block_public_policy     = false",
			`sets block_public_policy = "false", want true`},
		{"public access block from a variable", "bucket.tf",
			"restrict_public_buckets = true", "restrict_public_buckets = var.restrict",
			`sets restrict_public_buckets = "${var.restrict}", want true`},
		{"no encryption", "bucket.tf",
			`sse_algorithm = "AES256"`, `sse_algorithm = "none"`,
			`has sse_algorithm "none"`},
		{"ACLs on", "bucket.tf",
			`object_ownership = "BucketOwnerEnforced"`, `object_ownership = "ObjectWriter"`,
			`sets object_ownership "ObjectWriter", want BucketOwnerEnforced`},
		{"plain HTTP allowed", "bucket.tf",
			`variable = "aws:SecureTransport"`, `variable = "aws:SourceIp"`,
			"no bucket policy denying every s3 action to everyone when aws:SecureTransport is false"},
		{"cas/ expires by default", "variables.tf",
			"type        = number\n  default     = null\n\n  validation {\n    condition     = var.cas_retention_days",
			"type        = number\n  default     = 90\n\n  validation {\n    condition     = var.cas_retention_days",
			`lifecycle rule "expire-cas" (bucket.tf:`},
		{"whole bucket expires", "bucket.tf",
			"filter {\n      prefix = \"runs/\"\n    }", "filter {}",
			`lifecycle rule "expire-runs" (bucket.tf:`},
		{"runs/ never expire", "bucket.tf",
			"expiration {\n      days = var.run_retention_days\n    }", "",
			"has no enabled lifecycle rule expiring runs/ after 30 days"},
		{"runs/ rule disabled", "bucket.tf",
			"id     = \"expire-runs\"\n    status = \"Enabled\"", "id     = \"expire-runs\"\n    status = \"Disabled\"",
			"has no enabled lifecycle rule expiring runs/ after 30 days"},
		{"uploads never aborted", "bucket.tf",
			"days_after_initiation = 7", "days_after_initiation = 30",
			"has no enabled lifecycle rule aborting incomplete multipart uploads within 7 days"},
		{"untagged resource", "worker.tf",
			"  role = aws_iam_role.worker.name\n  tags = local.tags", "  role = aws_iam_role.worker.name",
			`aws_iam_instance_profile.worker (worker.tf:`},
		{"user tags override burst:managed", "main.tf",
			`merge(var.tags, { "burst:managed" = "true" })`, `merge({ "burst:managed" = "true" }, var.tags)`,
			"local.tags is"},
		{"output renamed", "outputs.tf",
			`output "security_group_id" {`, `output "security_group" {`,
			`output "security_group_id" is missing`},
		{"output points elsewhere", "outputs.tf",
			"value       = aws_iam_instance_profile.worker.name", "value       = aws_iam_role.worker.name",
			`output "instance_profile" is ${aws_iam_role.worker.name}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(mutate(t, tc.file, tc.old, tc.new))
			if tc.want == "" {
				if len(got) > 0 {
					t.Errorf("reported %q for a change that keeps every rule", got)
				}
				return
			}
			if !containsProblem(got, tc.want) {
				t.Errorf("reported\n  %s\nwant a problem containing %q", strings.Join(got, "\n  "), tc.want)
			}
		})
	}
}

// TestCLIPolicyCoversEC2API checks the policy against the code: every call
// of burst's EC2 interface must be an action the CLI policy allows, or the
// first cloud run fails with access denied.
func TestCLIPolicyCoversEC2API(t *testing.T) {
	api := reflect.TypeFor[provision.EC2API]()
	if api.NumMethod() == 0 {
		t.Fatal("provision.EC2API has no methods")
	}
	for i := range api.NumMethod() {
		action := "ec2:" + api.Method(i).Name
		if !slices.Contains(cliActions, action) {
			t.Errorf("burst calls %s, which the CLI policy does not allow", action)
		}
	}
}
