package provision

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Defaults are applied in one place: a request that leaves the types,
// the market and the budget to the configuration gets the same quote as
// one that names the configuration's values itself.
func TestQuoteDefaultsInOnePlace(t *testing.T) {
	f := newCatalogFake()
	f.addType("c6i.2xlarge", 8, 16384, 0)
	f.addType("c6i.xlarge", 4, 8192, 0)
	f.addType("m7i.large", 2, 8192, 0)
	f.addSpot("c6i.2xlarge", "us-east-1a", "Linux/UNIX", "0.12")
	f.addSpot("c6i.xlarge", "us-east-1a", "Linux/UNIX", "0.07")
	def := QuoteDefaults{Types: []string{"c6i.2xlarge", "c6i.xlarge"}, Market: "on-demand", Budget: 3}
	base := QuoteRequest{Tasks: 80, Region: "us-east-1", TaskTime: time.Minute}
	viaDefaults, err := MakeQuote(context.Background(), f, base, def)
	if err != nil {
		t.Fatal(err)
	}
	explicit := base
	explicit.Types, explicit.Market, explicit.Budget = def.Types, def.Market, def.Budget
	given, err := MakeQuote(context.Background(), f, explicit, QuoteDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viaDefaults, given) {
		t.Errorf("quotes differ:\n%+v\n%+v", viaDefaults, given)
	}
	if viaDefaults.Budget != 3 || len(viaDefaults.Markets) != 1 || viaDefaults.Markets[0] != OnDemand {
		t.Errorf("defaults not applied: %+v", viaDefaults)
	}
	for _, o := range viaDefaults.Options {
		if o.Offer.Market != OnDemand || o.Offer.Type.Name == "m7i.large" {
			t.Errorf("option outside the defaults: %v", o)
		}
	}
	// A flag given wins over the configuration.
	spot := base
	spot.Market = "spot"
	q, err := MakeQuote(context.Background(), f, spot, def)
	if err != nil {
		t.Fatal(err)
	}
	if q.Chosen().Offer.Market != Spot || q.PriceSource != "" {
		t.Errorf("--market spot: chose %v (on-demand prices from %q)", q.Chosen(), q.PriceSource)
	}
	if viaDefaults.PriceSource == "" {
		t.Error("the quote does not say where its on-demand prices came from")
	}
}

func TestParseMiB(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  string
	}{
		{"512", 512, ""},
		{"512MiB", 512, ""},
		{" 3 GiB ", 3072, ""},
		{"1.5g", 1536, ""},
		{"2GB", 2048, ""},
		{"100mb", 100, ""},
		{"0.1", 1, ""},
		{"0", 0, `"0": must be between 1 MiB and 1 EiB`},
		{"-5M", 0, `"-5M": must be between 1 MiB and 1 EiB`},
		{"2000000000G", 0, "must be between 1 MiB and 1 EiB"},
		{"lots", 0, `"lots" is not a size like 512MiB or 3GiB`},
		{"NaN", 0, "is not a size"},
		{"", 0, `"" is not a size`},
	} {
		got, err := ParseMiB(tt.in)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseMiB(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseMiB(%q) = %d, %v, want error %q", tt.in, got, err, tt.err)
		}
	}
}

// FuzzParseMiB: a size is accepted only between 1 MiB and 1 EiB, and an
// error is one line.
func FuzzParseMiB(f *testing.F) {
	for _, s := range []string{"512", "3GiB", "1.5g", "0", "1e300", "-1", "inf", "0x10M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mib, err := ParseMiB(s)
		if err != nil {
			if mib != 0 || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseMiB(%q) = %d, %q", s, mib, err)
			}
			return
		}
		if mib < 1 || mib > 1<<40 {
			t.Fatalf("ParseMiB(%q) = %d", s, mib)
		}
	})
}
