package provision

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The on-demand price table is generated from AWS's public Price List bulk
// offer file for AmazonEC2 (Linux, shared tenancy, no pre-installed
// software, used capacity, OnDemand term); its "source" and "as_of" fields
// say where and when the prices come from. Refresh it (network needed):
//
//go:generate go run ./internal/pricegen -out ondemand.json -region us-east-1,us-east-2,us-west-2,eu-west-1,eu-central-1
//go:embed ondemand.json
var onDemandJSON []byte

// PriceTable is the on-demand price table's file format (ondemand.json).
type PriceTable struct {
	// Source says where the prices come from.
	Source string `json:"source"`
	// AsOf is the date of the prices: the offer files' publication date
	// (YYYY-MM-DD) when generated.
	AsOf string `json:"as_of"`
	// Note says anything else a reader of the prices should know.
	Note string `json:"note,omitempty"`
	// Prices is US dollars per instance-hour by region, then type.
	Prices map[string]map[string]float64 `json:"prices"`
}

var onDemand = sync.OnceValues(func() (*PriceTable, error) {
	var t PriceTable
	if err := json.Unmarshal(onDemandJSON, &t); err != nil {
		return nil, fmt.Errorf("embedded on-demand price table: %w", err)
	}
	return &t, nil
})

// OnDemandPrices returns the embedded on-demand price table. It is built
// into the binary, so an error means a broken build.
func OnDemandPrices() (*PriceTable, error) { return onDemand() }

// OnDemandPrice returns the on-demand price of a Linux instance of type
// typ in region, in US dollars per hour, from the embedded table (see
// OnDemandPrices for its date); ok is false when the table lacks it.
func OnDemandPrice(region, typ string) (float64, bool) {
	t, err := onDemand()
	if err != nil {
		return 0, false
	}
	p, ok := t.Prices[region][typ]
	return p, ok && p > 0
}

// spotProduct is the product description burst's instances run under.
const spotProduct = "Linux/UNIX"

// SpotPrices returns the current Linux spot price of each named type, in
// US dollars per hour: the lowest across the region's availability zones.
// A type with no spot price (not offered on spot here) is left out of the
// map. It only reads.
func SpotPrices(ctx context.Context, api EC2API, names []string) (map[string]float64, error) {
	prices := map[string]float64{}
	if len(names) == 0 {
		return prices, nil
	}
	in := &ec2.DescribeSpotPriceHistoryInput{
		ProductDescriptions: []string{spotProduct},
		StartTime:           aws.Time(time.Now()),
	}
	for _, n := range names {
		in.InstanceTypes = append(in.InstanceTypes, types.InstanceType(n))
	}
	pages := ec2.NewDescribeSpotPriceHistoryPaginator(api, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading spot prices: %w", err)
		}
		for _, sp := range page.SpotPriceHistory {
			typ := string(sp.InstanceType)
			// EC2 names the product "Linux/UNIX" or, for older
			// accounts, "Linux/UNIX (Amazon VPC)": both are burst's.
			if !strings.HasPrefix(string(sp.ProductDescription), spotProduct) || !slices.Contains(names, typ) {
				continue
			}
			p, err := strconv.ParseFloat(aws.ToString(sp.SpotPrice), 64)
			if err != nil || p <= 0 {
				continue
			}
			if old, ok := prices[typ]; !ok || p < old {
				prices[typ] = p
			}
		}
	}
	return prices, nil
}

// PriceList is a set of on-demand prices for one region and where they
// come from.
type PriceList struct {
	// Prices is US dollars per instance-hour, by type.
	Prices map[string]float64
	// Source says where the prices come from, for people: "AWS Price
	// List API, fetched 2026-01-02" or "burst's table of 2025-06-01".
	Source string
	// Notes say, for people, what went wrong on the way (a failed fetch
	// that fell back to the table).
	Notes []string
}

// OnDemandSource gives on-demand prices of Linux instances. It never
// fails: a source that cannot fetch prices falls back to what it has, and
// says so in Notes.
type OnDemandSource interface {
	OnDemandPrices(ctx context.Context, region string, types []string) PriceList
}

// EmbeddedPrices is the on-demand price table built into burst.
type EmbeddedPrices struct{}

// OnDemandPrices returns the table's prices for region.
func (EmbeddedPrices) OnDemandPrices(_ context.Context, region string, types []string) PriceList {
	pl := PriceList{Prices: map[string]float64{}}
	t, err := onDemand()
	if err != nil {
		pl.Notes = append(pl.Notes, err.Error())
		return pl
	}
	pl.Source = "burst's table of " + t.AsOf
	for _, typ := range types {
		if p, ok := OnDemandPrice(region, typ); ok {
			pl.Prices[typ] = p
		}
	}
	return pl
}

// Offers pairs instance types with their prices on the allowed markets:
// spot from spot (as SpotPrices returns), on-demand from the embedded
// table for region. A type without a price on a market gives no offer
// there, and a note saying so.
func Offers(region string, its []InstanceType, spot map[string]float64, markets []Market) (offers []Offer, notes []string) {
	names := make([]string, len(its))
	for i, it := range its {
		names[i] = it.Name
	}
	return offersFrom(region, its, spot, EmbeddedPrices{}.OnDemandPrices(context.Background(), region, names), markets)
}

func offersFrom(region string, its []InstanceType, spot map[string]float64, od PriceList, markets []Market) (offers []Offer, notes []string) {
	var noSpot, noOD []string
	for _, it := range its {
		for _, m := range markets {
			switch m {
			case Spot:
				if p, ok := spot[it.Name]; ok {
					offers = append(offers, Offer{Type: it, Market: Spot, PerHour: p})
				} else {
					noSpot = append(noSpot, it.Name)
				}
			case OnDemand:
				if p, ok := od.Prices[it.Name]; ok && p > 0 {
					offers = append(offers, Offer{Type: it, Market: OnDemand, PerHour: p})
				} else {
					noOD = append(noOD, it.Name)
				}
			}
		}
	}
	if len(noSpot) > 0 {
		notes = append(notes, fmt.Sprintf("no spot price in %s for %s: spot offers skipped", region, strings.Join(noSpot, ", ")))
	}
	if len(noOD) > 0 {
		notes = append(notes, fmt.Sprintf("no on-demand price in %s for %s in %s: on-demand offers skipped", od.Source, strings.Join(noOD, ", "), region))
	}
	return offers, notes
}
