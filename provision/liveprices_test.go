package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
)

// pricingFake is a stateful PricingAPI: it answers GetProducts from a
// table of prices, in documents of the shape the Price List Query API
// returns, a page at a time, honouring the filters burst sends; it
// records the calls and fails while fail is set.
type pricingFake struct {
	mu     sync.Mutex
	prices map[string]map[string]float64 // region, type
	calls  int
	fail   error
}

// priceDoc is a GetProducts document as AWS writes it (abridged: the
// fields burst reads and a few it must skip over).
func priceDoc(region, typ, operation string, usd float64) string {
	return fmt.Sprintf(`{"product":{"productFamily":"Compute Instance","attributes":{"enhancedNetworkingSupported":"Yes","memory":"4 GiB","vcpu":"2","capacitystatus":"Used","locationType":"AWS Region","instanceType":%q,"tenancy":"Shared","operatingSystem":"Linux","licenseModel":"No License required","regionCode":%q,"preInstalledSw":"NA","operation":%q,"servicecode":"AmazonEC2"},"sku":"SKU%s"},"serviceCode":"AmazonEC2","terms":{"OnDemand":{"SKU%s.JRTCKXETXF":{"priceDimensions":{"SKU%s.JRTCKXETXF.6YS6EN2CT7":{"unit":"Hrs","endRange":"Inf","description":"$%g per On Demand Linux %s Instance Hour","appliesTo":[],"rateCode":"SKU%s.JRTCKXETXF.6YS6EN2CT7","beginRange":"0","pricePerUnit":{"USD":"%.10f"}}},"sku":"SKU%s","effectiveDate":"2026-11-01T00:00:00Z","offerTermCode":"JRTCKXETXF","termAttributes":{}}}},"version":"20261120000000","publicationDate":"2026-11-20T00:00:00Z"}`,
		typ, region, operation, typ, typ, typ, usd, typ, typ, usd, typ)
}

func (f *pricingFake) GetProducts(_ context.Context, in *pricing.GetProductsInput, _ ...func(*pricing.Options)) (*pricing.GetProductsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	if aws.ToString(in.ServiceCode) != "AmazonEC2" {
		return nil, errors.New("pricingFake: only AmazonEC2")
	}
	var region string
	var types []string
	for _, fl := range in.Filters {
		switch aws.ToString(fl.Field) {
		case "regionCode":
			region = aws.ToString(fl.Value)
		case "instanceType":
			types = strings.Split(aws.ToString(fl.Value), ",")
		}
	}
	var docs []string
	for _, typ := range types {
		if p, ok := f.prices[region][typ]; ok {
			docs = append(docs, priceDoc(region, typ, "RunInstances", p))
			// A product burst must skip: the same type with SQL Server.
			docs = append(docs, priceDoc(region, typ, "RunInstances:0002", p*4))
		}
	}
	// One document a page.
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	out := &pricing.GetProductsOutput{FormatVersion: aws.String("aws_v1")}
	if start < len(docs) {
		out.PriceList = docs[start : start+1]
		if start+1 < len(docs) {
			out.NextToken = aws.String(fmt.Sprint(start + 1))
		}
	}
	return out, nil
}

// Prices come from the Price List API, are cached a day, and the quote
// says so; when the API fails, the embedded table is used, with its date
// and a note.
func TestLivePrices(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	f := &pricingFake{prices: map[string]map[string]float64{"us-east-1": {"c6i.large": 0.0851, "c6i.xlarge": 0.1702}}}
	lp := &LivePrices{API: f, CacheDir: t.TempDir(), Now: func() time.Time { return now }}
	pl := lp.OnDemandPrices(ctx, "us-east-1", []string{"c6i.large", "c6i.xlarge"})
	if pl.Prices["c6i.large"] != 0.0851 || pl.Prices["c6i.xlarge"] != 0.1702 {
		t.Fatalf("prices %v", pl.Prices)
	}
	if !strings.HasPrefix(pl.Source, "AWS Price List API, fetched 2026-12-02") || len(pl.Notes) > 0 {
		t.Errorf("source %q, notes %v", pl.Source, pl.Notes)
	}
	calls := f.calls
	// Within the day: from the cache, no call.
	now = now.Add(23 * time.Hour)
	f.fail = errors.New("no network")
	if pl := lp.OnDemandPrices(ctx, "us-east-1", []string{"c6i.large"}); pl.Prices["c6i.large"] != 0.0851 || f.calls != calls {
		t.Errorf("cached: %v after %d calls", pl.Prices, f.calls-calls)
	}
	// After a day, with the API down: the table, with its date.
	now = now.Add(2 * time.Hour)
	pl = lp.OnDemandPrices(ctx, "us-east-1", []string{"c6i.large"})
	table, _ := OnDemandPrice("us-east-1", "c6i.large")
	if pl.Prices["c6i.large"] != table || !strings.HasPrefix(pl.Source, "burst's table of ") || len(pl.Notes) != 1 || !strings.Contains(pl.Notes[0], "no network") {
		t.Errorf("fallback: %v, %q, %v", pl.Prices, pl.Source, pl.Notes)
	}
	// The API back, with a type it does not price: that one from the
	// table, and the source says so.
	f.fail = nil
	pl = lp.OnDemandPrices(ctx, "us-east-1", []string{"c6i.large", "c7i.large"})
	if pl.Prices["c6i.large"] != 0.0851 || !strings.Contains(pl.Source, "for c7i.large") {
		t.Errorf("mixed: %v, %q", pl.Prices, pl.Source)
	}
}

// A quote says where its on-demand prices came from.
func TestQuoteNamesItsPriceSource(t *testing.T) {
	f := newCatalogFake()
	f.addType("c6i.large", 2, 4096, 0)
	pf := &pricingFake{prices: map[string]map[string]float64{"us-east-1": {"c6i.large": 0.09}}}
	q, err := MakeQuote(context.Background(), f, QuoteRequest{
		Tasks: 10, Region: "us-east-1", TaskTime: time.Minute, Market: "on-demand", Types: []string{"c6i.large"},
		Prices: &LivePrices{API: pf, CacheDir: t.TempDir()},
	}, QuoteDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q.PriceSource, "AWS Price List API") || q.Chosen().Offer.PerHour != 0.09 {
		t.Errorf("source %q, chosen %v", q.PriceSource, q.Chosen())
	}
}

func FuzzParsePriceListItem(f *testing.F) {
	f.Add(priceDoc("us-east-1", "c6i.large", "RunInstances", 0.085))
	f.Add(`{"product":{"attributes":{"instanceType":"x","regionCode":"r","operatingSystem":"Linux","tenancy":"Shared"}},"terms":{"OnDemand":{"a":{"priceDimensions":{"b":{"unit":"Hrs","pricePerUnit":{"USD":"1e400"}}}}}}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		typ, p, err := parsePriceListItem(doc, "us-east-1")
		if err == nil && typ != "" && !(p > 0) {
			t.Errorf("%q priced at %v", typ, p)
		}
	})
}
