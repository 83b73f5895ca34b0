package provision

import (
	"context"
	"reflect"
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
