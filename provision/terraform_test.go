package provision

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzParseTerraformOutputs(f *testing.F) {
	f.Add([]byte(`{"region":{"sensitive":false,"type":"string","value":"us-east-1"},"subnet_ids":{"type":["tuple",["string"]],"value":["subnet-1"]}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":{}}`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`{"a":{"value":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		outs, err := parseTerraformOutputs(data)
		if err != nil {
			if outs != nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("outputs %v and error %q", outs, err)
			}
			return
		}
		for name, v := range outs {
			if !json.Valid(v) {
				t.Fatalf("output %q: invalid JSON %q", name, v)
			}
		}
	})
}
