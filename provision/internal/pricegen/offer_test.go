package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/slicerburst/burst/provision"
)

func TestParseOffer(t *testing.T) {
	f, err := os.Open("testdata/offer.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keep := func(typ string) bool { return !strings.HasPrefix(typ, "c7g.") }
	offer, err := ParseOffer(f, Filter{Region: "us-east-1", Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	// Only Linux, Shared, no software, used capacity, compute instances
	// in the region, of kept families, with an on-demand hourly price.
	want := map[string]float64{"c6i.large": 0.085, "m6i.xlarge": 0.192}
	if !reflect.DeepEqual(offer.Prices, want) {
		t.Errorf("prices = %v, want %v", offer.Prices, want)
	}
	if offer.PublicationDate != "2024-06-10T00:00:00Z" {
		t.Errorf("publication date %q", offer.PublicationDate)
	}
}

func TestParseOfferTermsBeforeProducts(t *testing.T) {
	data, err := os.ReadFile("testdata/offer.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	// The same file with terms first: the join must not depend on order.
	var buf bytes.Buffer
	buf.WriteString(`{"terms":`)
	buf.Write(doc["terms"])
	buf.WriteString(`,"products":`)
	buf.Write(doc["products"])
	buf.WriteString(`}`)
	offer, err := ParseOffer(&buf, Filter{Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]float64{"m6i.large": 0.107}; !reflect.DeepEqual(offer.Prices, want) {
		t.Errorf("eu-west-1 prices = %v, want %v", offer.Prices, want)
	}
}

func TestParseOfferRejects(t *testing.T) {
	for _, in := range []string{
		``,
		`[]`,
		`{"products": []}`,
		`{"products": {"A": {"sku": 1}}}`,
		`{"terms": {"OnDemand": {"A": {"A.T": {"priceDimensions": {"d": {"unit": "Hrs", "pricePerUnit": {"USD": "cheap"}}}}}}}}`,
		`{"terms": {"OnDemand": {"A": {"A.T": {"priceDimensions": {"d": {"unit": "Hrs", "pricePerUnit": {"USD": "-1"}}}}}}}}`,
		`{"products": {}} {}`,
		`{"products": {}`,
	} {
		if _, err := ParseOffer(strings.NewReader(in), Filter{}); err == nil {
			t.Errorf("ParseOffer(%q) accepted", in)
		}
	}
}

// TestRunRewritesTable runs the generator on the fixture (-file), as go
// generate would on a downloaded file, and checks that other regions are
// kept and the result is a table that provision reads.
func TestRunRewritesTable(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ondemand.json")
	old := provision.PriceTable{Source: "old", AsOf: "2020-01-01", Prices: map[string]map[string]float64{
		"eu-west-1": {"c6i.large": 0.096},
		"us-east-1": {"c6i.large": 9, "gone.large": 1},
	}}
	data, _ := json.Marshal(old)
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), out, []string{"us-east-1"}, "testdata/offer.json", []string{"c6i", "m6i"}); err != nil {
		t.Fatal(err)
	}
	var got provision.PriceTable
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]float64{
		"eu-west-1": {"c6i.large": 0.096},
		"us-east-1": {"c6i.large": 0.085, "m6i.xlarge": 0.192},
	}
	if !reflect.DeepEqual(got.Prices, want) || got.AsOf != "2024-06-10" || !strings.Contains(got.Source, "AmazonEC2") {
		t.Errorf("table = %+v", got)
	}
	if err := run(context.Background(), out, []string{"us-east-1", "us-west-2"}, "testdata/offer.json", nil); err == nil {
		t.Error("-file with two regions accepted")
	}
	if err := run(context.Background(), out, []string{"ap-south-1"}, "testdata/offer.json", []string{"c6i"}); err == nil {
		t.Error("a region with no prices in the file accepted")
	}
}

func FuzzParseOffer(f *testing.F) {
	fixture, err := os.ReadFile("testdata/offer.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add([]byte(`{"products": {}, "terms": {"OnDemand": {}}}`))
	f.Add([]byte(`{"terms": {"OnDemand": {"A": {"A.T": {"priceDimensions": {"d": {"unit": "Hrs", "pricePerUnit": {"USD": "1e400"}}}}}}}}`))
	f.Add([]byte(`{"products": {"A": {"productFamily": "Compute Instance", "attributes": null}}}`))
	f.Add([]byte(`{"a": [[[[{}]]]], "products": {"A": [1,2]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		offer, err := ParseOffer(bytes.NewReader(data), Filter{})
		if err != nil {
			return
		}
		for typ, p := range offer.Prices {
			if typ == "" || !(p > 0) {
				t.Errorf("price %q = %v", typ, p)
			}
		}
	})
}
