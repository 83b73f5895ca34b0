package main

import (
	"errors"
	"os"
	"path/filepath"
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

func TestParseCloudConfig(t *testing.T) {
	c, err := parseCloudConfig("c.yaml", []byte(validConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := cloudConfig{
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
	data, err := c.marshal("header line one\nline two")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# header line one\n# line two\n") {
		t.Fatalf("marshal lost the header:\n%s", data)
	}
	back, err := parseCloudConfig("c.yaml", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, c) || len(c.diff(back)) != 0 {
		t.Fatalf("round trip: got %+v, want %+v\n%s", back, c, data)
	}

	// The optional settings are optional, and a null value unsets one.
	minimal := "region: us-east-1\nstore: s3://b-1\ninstance_profile: arn:aws:iam::123456789012:instance-profile/path/burst-worker\nsecurity_groups: [sg-12345678]\nsubnets: [subnet-12345678]\nami:\n"
	m, err := parseCloudConfig("m.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if m.AMI != "" || m.Budget != 0 || m.Market != "" || m.InstanceTypes != nil {
		t.Fatalf("optional settings: %+v", m)
	}
	data, _ = m.marshal("h")
	for _, absent := range []string{"ami", "budget", "market", "instance_types"} {
		if strings.Contains(string(data), absent+":") {
			t.Errorf("marshal wrote unset %s:\n%s", absent, data)
		}
	}
}

func TestParseCloudConfigErrors(t *testing.T) {
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
			_, err := parseCloudConfig("c.yaml", []byte(tt.data))
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
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *configError", err)
			}
		})
	}
}

func TestLoadCloudConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	t.Setenv("BURST_CONFIG", "")

	// No file: the error says how to make one, exit 2.
	_, err := loadCloudConfig()
	want := filepath.Join(dir, "xdg", "burst", "config.yaml")
	if !errors.Is(err, errNoCloudConfig) || !strings.Contains(err.Error(), "no configuration at "+want+": run burst init --terraform DIR (see README, Running on AWS)") {
		t.Fatalf("no file: %v", err)
	}
	if code := exitCode(&ioStreams{Err: new(strings.Builder)}, err); code != exitUsage {
		t.Fatalf("no file: exit %d, want %d", code, exitUsage)
	}

	// The XDG location, then $BURST_CONFIG over it.
	if err := os.MkdirAll(filepath.Dir(want), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte(validConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadCloudConfig()
	if err != nil || c.Region != "eu-west-1" || c.Path != want {
		t.Fatalf("XDG file: %+v, %v", c, err)
	}
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte(strings.Replace(validConfig, "eu-west-1", "ap-southeast-2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BURST_CONFIG", other)
	c, err = loadCloudConfig()
	if err != nil || c.Region != "ap-southeast-2" || c.Path != other {
		t.Fatalf("BURST_CONFIG: %+v, %v", c, err)
	}

	// A bad file is a usage error that names it and the line.
	if err := os.WriteFile(other, []byte(validConfig+"regoin: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadCloudConfig()
	var ue usageError
	if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), other+":13: unknown setting \"regoin\"") {
		t.Fatalf("bad file: %v", err)
	}
	if errors.Is(err, errNoCloudConfig) {
		t.Fatal("a bad file is reported as a missing one")
	}

	// A directory in its place.
	t.Setenv("BURST_CONFIG", dir)
	if _, err := loadCloudConfig(); err == nil || errors.Is(err, errNoCloudConfig) {
		t.Fatalf("directory: %v", err)
	}
}

func FuzzParseCloudConfig(f *testing.F) {
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
		// limit is tested by TestParseCloudConfigErrors.
		if len(data) > 2048 {
			return
		}
		c, err := parseCloudConfig("f.yaml", data)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "f.yaml") || strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
				t.Fatalf("error %q: want one valid line starting with the file name", msg)
			}
			var ce *configError
			if !errors.As(err, &ce) || ce.Msg == "" {
				t.Fatalf("error %T %v is not a *configError with a message", err, err)
			}
			return
		}
		// Whatever parses is valid, and survives writing and reading back.
		if err := c.validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		out, err := c.marshal("fuzz")
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseCloudConfig("f.yaml", out)
		if err != nil {
			t.Fatalf("written config does not parse: %v\n%s", err, out)
		}
		if d := c.diff(back); len(d) != 0 {
			t.Fatalf("round trip changed %v\n%s", d, out)
		}
	})
}
