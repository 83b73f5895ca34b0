package provision

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const validConfig = `# a comment
region: eu-west-1
store: s3://burst-abc/team
instance_profile: burst-worker
security_groups: [sg-0123456789abcdef0]
subnets:
  - subnet-0123456789abcdef0
  - subnet-1234abcd
ami: ami-0123456789abcdef0
instance_types: [c6i.large, c7i.xlarge]
market: spot
budget: 12.5
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("c.yaml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Region:          "eu-west-1",
		Store:           "s3://burst-abc/team",
		InstanceProfile: "burst-worker",
		SecurityGroups:  []string{"sg-0123456789abcdef0"},
		Subnets:         []string{"subnet-0123456789abcdef0", "subnet-1234abcd"},
		AMI:             "ami-0123456789abcdef0",
		InstanceTypes:   []string{"c6i.large", "c7i.xlarge"},
		Market:          "spot",
		Budget:          12.5,
		Path:            "c.yaml",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}

	// What marshal writes parses back to the same configuration.
	data, err := c.Marshal("header line one\nline two")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# header line one\n# line two\n") {
		t.Fatalf("marshal lost the header:\n%s", data)
	}
	back, err := ParseConfig("c.yaml", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, c) || len(c.Diff(back)) != 0 {
		t.Fatalf("round trip: got %+v, want %+v\n%s", back, c, data)
	}

	// The optional settings are optional, and a null value unsets one.
	minimal := "region: us-east-1\nstore: s3://b-1\ninstance_profile: arn:aws:iam::123456789012:instance-profile/path/burst-worker\nsecurity_groups: [sg-12345678]\nsubnets: [subnet-12345678]\nami:\n"
	m, err := ParseConfig("m.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if m.AMI != "" || m.Budget != 0 || m.Market != "" || m.InstanceTypes != nil {
		t.Fatalf("optional settings: %+v", m)
	}
	data, _ = m.Marshal("h")
	for _, absent := range []string{"ami", "budget", "market", "instance_types"} {
		if strings.Contains(string(data), absent+":") {
			t.Errorf("marshal wrote unset %s:\n%s", absent, data)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := "region: us-east-1\nstore: s3://burst-abc\ninstance_profile: burst-worker\nsecurity_groups: [sg-12345678]\nsubnets: [subnet-12345678]\n"
	tests := []struct {
		name, data string
		want       string // the whole message after "c.yaml"
	}{
		{"empty", "", ": empty: run burst init to write it"},
		{"comment only", "# nothing\n", ": empty: run burst init to write it"},
		{"not yaml", "region: [\n", ": not valid YAML: "},
		{"list at top", "- region\n", ":1: want a mapping of settings"},
		{"typo", base + "regoin: us-east-2\n", `:6: unknown setting "regoin" (did you mean region?)`},
		{"singular", base + "security_group: sg-12345678\n", `:6: unknown setting "security_group" (did you mean security_groups?)`},
		{"unknown", base + "colour: blue\n", `:6: unknown setting "colour"; the settings are region, store,`},
		{"twice", base + "region: us-east-2\n", ":6: region: set twice (first on line 1)"},
		{"two documents", base + "---\nregion: x\n", ":6: holds more than one YAML document"},
		{"missing region", strings.Replace(base, "region: us-east-1\n", "", 1), ": region: missing"},
		{"missing store", strings.Replace(base, "store: s3://burst-abc\n", "", 1), ": store: missing"},
		{"missing profile", strings.Replace(base, "instance_profile: burst-worker\n", "", 1), ": instance_profile: missing"},
		{"missing sg", strings.Replace(base, "security_groups: [sg-12345678]\n", "", 1), ": security_groups: missing"},
		{"empty subnets", strings.Replace(base, "[subnet-12345678]", "[]", 1), ":5: subnets: missing"},
		{"bad region", strings.Replace(base, "us-east-1", "us_east_1", 1), `:1: region: "us_east_1" is not an AWS region name`},
		{"region number", strings.Replace(base, "us-east-1", "12", 1), `:1: region: want a name, found "12"`},
		{"region list", strings.Replace(base, "us-east-1", "[us-east-1]", 1), ":1: region: want one value, found a list"},
		{"local store", strings.Replace(base, "s3://burst-abc", "/data/burst", 1), `:2: store: "/data/burst" is not an s3:// URL`},
		{"bad bucket", strings.Replace(base, "s3://burst-abc", "s3://Burst_ABC", 1), `:2: store: s3://Burst_ABC: bucket name`},
		{"bad profile", strings.Replace(base, "burst-worker", "burst worker", 1), `:3: instance_profile: "burst worker" is neither`},
		{"sg scalar", strings.Replace(base, "[sg-12345678]", "sg-12345678", 1), `:4: security_groups: want a list such as [sg-0123456789abcdef0], found "sg-12345678"`},
		{"bad sg", strings.Replace(base, "sg-12345678", "sg-xyz", 1), `:4: security_groups: "sg-xyz" is not a security group id`},
		{"sg twice", strings.Replace(base, "[sg-12345678]", "[sg-12345678, sg-12345678]", 1), `:4: security_groups: "sg-12345678" is listed twice`},
		{"subnet map", strings.Replace(base, "[subnet-12345678]", "{a: b}", 1), ":5: subnets: want a list such as [subnet-0123456789abcdef0], found a mapping"},
		{"subnet number", strings.Replace(base, "[subnet-12345678]", "[1]", 1), `:5: subnets: want a list of names such as [subnet-0123456789abcdef0], found "1" in it`},
		{"bad ami", base + "ami: ami-123\n", `:6: ami: "ami-123" is not an image id`},
		{"bad type", base + "instance_types: [large]\n", `:6: instance_types: "large" is not a instance type`},
		{"bad market", base + "market: cheap\n", `:6: market: "cheap" is not spot, on-demand or any`},
		{"negative budget", base + "budget: -3\n", ":6: budget: -3 is not an amount"},
		{"budget text", base + "budget: lots\n", `:6: budget: want an amount in US dollars such as 25 or 7.50, found "lots"`},
		{"budget inf", base + "budget: .inf\n", `:6: budget: want an amount in US dollars such as 25 or 7.50, found ".inf"`},
		{"key not a name", base + "[a]: b\n", ":6: a key must be a plain name"},
		{"merge key", base + "<<: {region: x}\n", ":6: a key must be a plain name"},
		{"huge", base + "# " + strings.Repeat("x", maxConfigSize) + "\n", ": larger than 64 KiB"},
		{"newline in value", strings.Replace(base, "burst-worker", "\"a\\nb\"", 1), `:3: instance_profile: "a\nb" is neither`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "c.yaml"+tt.want) {
				t.Fatalf("error %q\nwant prefix %q", msg, "c.yaml"+tt.want)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError", err)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte("region: us-east-1\nstore: s3://b-1\ninstance_profile: p\nsecurity_groups: [sg-12345678]\nsubnets: [subnet-12345678]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\nsubnets: *x\n"))
	f.Add([]byte("region: !!binary aGVsbG8=\n"))
	f.Add([]byte("budget: 1_000\nmarket: on-demand\n"))
	f.Add([]byte("market: any\n"))
	f.Add([]byte("---\n...\n"))
	f.Add([]byte("? [a, b]\n: c\n"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Large inputs are slow to minimize and add little: the size
		// limit is tested by TestParseConfigErrors.
		if len(data) > 2048 {
			return
		}
		c, err := ParseConfig("f.yaml", data)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "f.yaml") || strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
				t.Fatalf("error %q: want one valid line starting with the file name", msg)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Msg == "" {
				t.Fatalf("error %T %v is not a *ConfigError with a message", err, err)
			}
			return
		}
		// Whatever parses is valid, and survives writing and reading back.
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		out, err := c.Marshal("fuzz")
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig("f.yaml", out)
		if err != nil {
			t.Fatalf("written config does not parse: %v\n%s", err, out)
		}
		if d := c.Diff(back); len(d) != 0 {
			t.Fatalf("round trip changed %v\n%s", d, out)
		}
	})
}
