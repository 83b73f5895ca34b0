package provision

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/slicerburst/burst/internal/oneline"
	"github.com/slicerburst/burst/internal/typo"
	"github.com/slicerburst/burst/staging"
)

// Config is burst's cloud settings, the file that `burst init` writes
// and that cloud runs read: where workers run and which run store they
// share. The required fields come from the account setup in terraform/.
type Config struct {
	// Region is the AWS region of the workers and of the store's bucket.
	Region string `yaml:"region" json:"region"`
	// Store is the run store of cloud runs, s3://BUCKET[/PREFIX].
	Store string `yaml:"store" json:"store"`
	// InstanceProfile is the workers' instance profile: its name or ARN.
	InstanceProfile string `yaml:"instance_profile" json:"instance_profile"`
	// SecurityGroups are the workers' security group ids.
	SecurityGroups []string `yaml:"security_groups,flow" json:"security_groups"`
	// Subnets are the subnet ids that workers launch into.
	Subnets []string `yaml:"subnets,flow" json:"subnets"`

	// AMI, when set, is the image workers boot from, instead of the newest
	// burst image of this burst's protocol in Region.
	AMI string `yaml:"ami,omitempty" json:"ami,omitempty"`
	// InstanceTypes, when set, are the instance types a fleet may use by
	// default.
	InstanceTypes []string `yaml:"instance_types,flow,omitempty" json:"instance_types,omitempty"`
	// Market, when set, is how instances are bought by default: spot,
	// on-demand, or any (as burst plan --market).
	Market Market `yaml:"market,omitempty" json:"market,omitempty"`
	// Budget, when above 0, is the default cap of one run's cost, in US
	// dollars.
	Budget float64 `yaml:"budget,omitempty" json:"budget,omitempty"`

	// Path is the file the configuration was read from.
	Path string `yaml:"-" json:"-"`
}

// MarketAny lets a run buy on either market (as burst plan --market any).
const MarketAny Market = "any"

// maxConfigSize bounds the configuration file that burst reads: a real one
// is a few hundred bytes.
const maxConfigSize = 64 << 10

// ErrNoConfig is wrapped by LoadConfig's error when there is no
// configuration file.
var ErrNoConfig = errors.New("no configuration")

// ConfigPath is where burst's configuration lives: $BURST_CONFIG, else
// burst/config.yaml in the user's configuration directory
// ($XDG_CONFIG_HOME, else ~/.config, on Linux).
func ConfigPath() (string, error) {
	if p := os.Getenv("BURST_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory: set BURST_CONFIG to the configuration file (%v)", err)
	}
	return filepath.Join(dir, "burst", "config.yaml"), nil
}

// LoadConfig reads and checks the configuration file at path. Every error
// is one line naming the file; when the file does not exist the error
// wraps ErrNoConfig and says how to write one; a file that is read but
// wrong is a *ConfigError. It reads the file only: nothing is checked
// against AWS.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, fmt.Errorf("%w at %s: run burst init --terraform DIR (see README, Running on AWS)", ErrNoConfig, path)
	}
	if err != nil {
		return Config{}, fmt.Errorf("reading configuration: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("reading configuration: %v", err)
	}
	return ParseConfig(path, data)
}

// ConfigError is a problem with a configuration file: which file, where in
// it, and what. Error() is one line.
type ConfigError struct {
	Path  string
	Line  int    // 0 when the problem is not on one line
	Field string // empty when the problem is not in one field
	Msg   string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return oneline.Clean(b.String())
}

// configFields are the keys of the configuration file, in the order they are
// written, with how each is decoded from its YAML value.
var configFields = []struct {
	name   string
	decode func(c *Config, v *yaml.Node) string // returns a problem, or ""
}{
	{"region", func(c *Config, v *yaml.Node) string { return decodeString(v, &c.Region) }},
	{"store", func(c *Config, v *yaml.Node) string { return decodeString(v, &c.Store) }},
	{"instance_profile", func(c *Config, v *yaml.Node) string { return decodeString(v, &c.InstanceProfile) }},
	{"security_groups", func(c *Config, v *yaml.Node) string {
		return decodeStrings(v, &c.SecurityGroups, "sg-0123456789abcdef0")
	}},
	{"subnets", func(c *Config, v *yaml.Node) string {
		return decodeStrings(v, &c.Subnets, "subnet-0123456789abcdef0")
	}},
	{"ami", func(c *Config, v *yaml.Node) string { return decodeString(v, &c.AMI) }},
	{"instance_types", func(c *Config, v *yaml.Node) string { return decodeStrings(v, &c.InstanceTypes, "c6i.large") }},
	{"market", func(c *Config, v *yaml.Node) string {
		var s string
		msg := decodeString(v, &s)
		c.Market = Market(s)
		return msg
	}},
	{"budget", func(c *Config, v *yaml.Node) string { return decodeFloat(v, &c.Budget) }},
}

func configFieldNames() string {
	names := make([]string, len(configFields))
	for i, f := range configFields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// ParseConfig decodes and checks a configuration file's contents.
// Unknown keys, repeated keys, values of the wrong kind and invalid values
// are all errors (*ConfigError, one line, naming path and the line).
func ParseConfig(path string, data []byte) (Config, error) {
	errf := func(line int, field, format string, args ...any) error {
		return &ConfigError{Path: path, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if len(data) > maxConfigSize {
		return Config{}, errf(0, "", "larger than %d KiB: not a burst configuration", maxConfigSize>>10)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errf(0, "", "empty: run burst init to write it")
		}
		return Config{}, errf(0, "", "not valid YAML: %v", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errf(extra.Line, "", "holds more than one YAML document")
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null" {
		return Config{}, errf(0, "", "empty: run burst init to write it")
	}
	if top.Kind != yaml.MappingNode {
		return Config{}, errf(top.Line, "", "want a mapping of settings (%s), found %s", configFieldNames(), nodeKind(top))
	}

	c := Config{Path: path}
	lines := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return Config{}, errf(k.Line, "", "a key must be a plain name (%s)", configFieldNames())
		}
		if prev, ok := lines[k.Value]; ok {
			return Config{}, errf(k.Line, k.Value, "set twice (first on line %d)", prev)
		}
		lines[k.Value] = k.Line
		found := false
		for _, f := range configFields {
			if f.name == k.Value {
				found = true
				if msg := f.decode(&c, resolve(v)); msg != "" {
					return Config{}, errf(k.Line, k.Value, "%s", msg)
				}
				break
			}
		}
		if !found {
			hint := ""
			if near := nearestField(k.Value); near != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", near)
			}
			return Config{}, errf(k.Line, "", "unknown setting %s%s; the settings are %s", oneline.Quote(k.Value), hint, configFieldNames())
		}
	}
	if err := c.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Path = path
			ce.Line = lines[ce.Field]
		}
		return Config{}, err
	}
	return c, nil
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n.Kind == yaml.AliasNode && n.Alias != nil && depth < 16; depth++ {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return oneline.Quote(n.Value)
	default:
		return "an alias"
	}
}

// decodeString reads a scalar value. A null value (the key with nothing
// after it) leaves s empty: the setting is unset.
func decodeString(v *yaml.Node, s *string) string {
	if v.Kind != yaml.ScalarNode {
		return "want one value, found " + nodeKind(v)
	}
	if v.ShortTag() == "!!null" {
		*s = ""
		return ""
	}
	if v.ShortTag() != "!!str" {
		return fmt.Sprintf("want a name, found %s", oneline.Quote(v.Value))
	}
	*s = v.Value
	return ""
}

func decodeStrings(v *yaml.Node, list *[]string, example string) string {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		*list = nil
		return ""
	}
	if v.Kind != yaml.SequenceNode {
		return fmt.Sprintf("want a list such as [%s], found %s", example, nodeKind(v))
	}
	out := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
			return fmt.Sprintf("want a list of names such as [%s], found %s in it", example, nodeKind(item))
		}
		out = append(out, item.Value)
	}
	*list = out
	return ""
}

func decodeFloat(v *yaml.Node, f *float64) string {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		*f = 0
		return ""
	}
	if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!int" && v.ShortTag() != "!!float") {
		return "want an amount in US dollars such as 25 or 7.50, found " + nodeKind(v)
	}
	x, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return "want an amount in US dollars such as 25 or 7.50, found " + oneline.Quote(v.Value)
	}
	*f = x
	return ""
}

// nearestField suggests the setting a mistyped key probably meant.
func nearestField(key string) string {
	best, bestD := "", 3
	k := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	for _, f := range configFields {
		if d := typo.Distance(k, f.name); d < bestD {
			best, bestD = f.name, d
		}
		// security_group for security_groups, subnet for subnets.
		if k+"s" == f.name {
			return f.name
		}
	}
	return best
}

var (
	// regionNameRe matches AWS region names: us-east-1, eu-central-2,
	// us-gov-west-1, ap-southeast-5.
	regionNameRe = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)
	// EC2 resource ids: a prefix and 8 or 17 hex digits.
	amiRe      = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	sgRe       = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
	subnetRe   = regexp.MustCompile(`^subnet-([0-9a-f]{8}|[0-9a-f]{17})$`)
	instTypeRe = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
	// An instance profile's name (IAM: letters, digits, +=,.@_-), or its
	// ARN.
	profileNameRe = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,128}$`)
	profileARNRe  = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/([A-Za-z0-9+=,.@_/-]{1,512})$`)
)

// Validate checks every setting on its own: required ones present, ids well
// formed. The error is a *ConfigError naming the field (without Path or
// Line, which the caller knows).
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.Region == "":
		return bad("region", "missing: the AWS region of the workers and the bucket, such as us-east-1")
	case !regionNameRe.MatchString(c.Region):
		return bad("region", "%s is not an AWS region name such as us-east-1", oneline.Quote(c.Region))
	}
	if c.Store == "" {
		return bad("store", "missing: the run store of cloud runs, s3://BUCKET or s3://BUCKET/PREFIX")
	}
	if !strings.HasPrefix(c.Store, "s3://") {
		return bad("store", "%s is not an s3:// URL: cloud workers share the run store through S3", oneline.Quote(c.Store))
	}
	if _, _, err := staging.ParseS3URL(c.Store); err != nil {
		return bad("store", "%v", err)
	}
	switch {
	case c.InstanceProfile == "":
		return bad("instance_profile", "missing: the name of the workers' instance profile")
	case !profileNameRe.MatchString(c.InstanceProfile) && !profileARNRe.MatchString(c.InstanceProfile):
		return bad("instance_profile", "%s is neither an instance profile name nor its ARN", oneline.Quote(c.InstanceProfile))
	}
	if err := checkIDs("security_groups", c.SecurityGroups, sgRe, "security group id such as sg-0123456789abcdef0"); err != nil {
		return err
	}
	if len(c.SecurityGroups) == 0 {
		return bad("security_groups", "missing: the workers' security group, such as [sg-0123456789abcdef0]")
	}
	if err := checkIDs("subnets", c.Subnets, subnetRe, "subnet id such as subnet-0123456789abcdef0"); err != nil {
		return err
	}
	if len(c.Subnets) == 0 {
		return bad("subnets", "missing: the subnets that workers launch into, such as [subnet-0123456789abcdef0]")
	}
	if c.AMI != "" && !amiRe.MatchString(c.AMI) {
		return bad("ami", "%s is not an image id such as ami-0123456789abcdef0", oneline.Quote(c.AMI))
	}
	if err := checkIDs("instance_types", c.InstanceTypes, instTypeRe, "instance type such as c6i.large"); err != nil {
		return err
	}
	switch c.Market {
	case "", Spot, OnDemand, MarketAny:
	default:
		return bad("market", "%s is not %s, %s or %s (as burst plan --market)", oneline.Quote(string(c.Market)), Spot, OnDemand, MarketAny)
	}
	if c.Budget < 0 || math.IsNaN(c.Budget) || math.IsInf(c.Budget, 0) {
		return bad("budget", "%v is not an amount in US dollars above 0", c.Budget)
	}
	return nil
}

// checkIDs checks each of a list's items against re, and that none is
// repeated.
func checkIDs(field string, ids []string, re *regexp.Regexp, what string) error {
	seen := map[string]bool{}
	for _, id := range ids {
		if !re.MatchString(id) {
			return &ConfigError{Field: field, Msg: fmt.Sprintf("%s is not a %s", oneline.Quote(id), what)}
		}
		if seen[id] {
			return &ConfigError{Field: field, Msg: fmt.Sprintf("%s is listed twice", oneline.Quote(id))}
		}
		seen[id] = true
	}
	return nil
}

// Marshal renders the configuration as the file burst writes, with a
// comment header.
func (c Config) Marshal(header string) ([]byte, error) {
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		b.WriteString("# " + line + "\n")
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	return b.Bytes(), nil
}

// ConfigChange is one setting that differs between two configurations.
type ConfigChange struct {
	Field    string `json:"field"`
	Old, New string
}

// Diff lists the settings that differ from c to next, in file order.
func (c Config) Diff(next Config) []ConfigChange {
	show := func(x Config) map[string]string {
		list := func(l []string) string {
			if len(l) == 0 {
				return ""
			}
			return "[" + strings.Join(l, ", ") + "]"
		}
		budget := ""
		if x.Budget != 0 {
			budget = strconv.FormatFloat(x.Budget, 'f', -1, 64)
		}
		return map[string]string{
			"region":           x.Region,
			"store":            x.Store,
			"instance_profile": x.InstanceProfile,
			"security_groups":  list(x.SecurityGroups),
			"subnets":          list(x.Subnets),
			"ami":              x.AMI,
			"instance_types":   list(x.InstanceTypes),
			"market":           string(x.Market),
			"budget":           budget,
		}
	}
	a, b := show(c), show(next)
	var out []ConfigChange
	for _, f := range configFields {
		if a[f.name] != b[f.name] {
			out = append(out, ConfigChange{Field: f.name, Old: a[f.name], New: b[f.name]})
		}
	}
	return out
}

// QuoteDefaults are the configuration's defaults for a quote.
func (c Config) QuoteDefaults() QuoteDefaults {
	return QuoteDefaults{Types: c.InstanceTypes, Market: string(c.Market), Budget: c.Budget}
}

// ValidRegion reports whether s is written as an AWS region name, such as
// us-east-1.
func ValidRegion(s string) bool { return regionNameRe.MatchString(s) }

// ValidSubnetID reports whether s is written as a subnet id, such as
// subnet-0123456789abcdef0.
func ValidSubnetID(s string) bool { return subnetRe.MatchString(s) }

// ValidInstanceType reports whether s is written as an instance type name,
// such as c6i.large.
func ValidInstanceType(s string) bool { return instTypeRe.MatchString(s) }
