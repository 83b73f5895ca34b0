package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	ptypes "github.com/aws/aws-sdk-go-v2/service/pricing/types"
)

// PricingAPI is the part of the AWS Price List Query API that burst calls.
// Its endpoints are in a few regions only (us-east-1 among them), whatever
// the region priced.
type PricingAPI interface {
	GetProducts(ctx context.Context, in *pricing.GetProductsInput, optFns ...func(*pricing.Options)) (*pricing.GetProductsOutput, error)
}

// PricingRegion is the region of the Price List Query API endpoint burst
// uses.
const PricingRegion = "us-east-1"

// PriceCacheTTL is how long fetched prices are used before they are
// fetched again.
const PriceCacheTTL = 24 * time.Hour

// LivePrices gives on-demand prices from the AWS Price List Query API,
// kept for PriceCacheTTL in a cache file per region, and falls back to the
// embedded table (saying so, with the table's date) when the API fails or
// lacks a type.
type LivePrices struct {
	API PricingAPI
	// CacheDir holds the cache files; no cache when empty.
	CacheDir string
	// Now is time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// priceCache is a cache file: one region's fetched prices.
type priceCache struct {
	Region  string             `json:"region"`
	Fetched time.Time          `json:"fetched"`
	Prices  map[string]float64 `json:"prices"`
}

func (l *LivePrices) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *LivePrices) log() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}

func (l *LivePrices) cachePath(region string) string {
	return filepath.Join(l.CacheDir, "ondemand-"+region+".json")
}

// OnDemandPrices returns the types' prices in region: from the cache when
// it is younger than a day and has them all, else fetched (and cached),
// else, for what is missing, the embedded table's.
func (l *LivePrices) OnDemandPrices(ctx context.Context, region string, types []string) PriceList {
	cache := l.readCache(region)
	fresh := cache != nil && l.now().Sub(cache.Fetched) < PriceCacheTTL && l.now().Sub(cache.Fetched) >= -time.Hour
	var missing []string
	for _, t := range types {
		if !fresh || cache.Prices[t] <= 0 {
			missing = append(missing, t)
		}
	}
	if cache == nil || !fresh {
		cache = &priceCache{Region: region, Prices: map[string]float64{}}
	}
	var fetchErr error
	if len(missing) > 0 {
		got, err := l.fetch(ctx, region, missing)
		if err != nil {
			fetchErr = err
			l.log().Info("fetching on-demand prices failed: using burst's table", "region", region, "err", err)
		} else {
			if cache.Fetched.IsZero() || !fresh {
				cache.Fetched = l.now().UTC()
			}
			for t, p := range got {
				cache.Prices[t] = p
			}
			l.writeCache(cache)
		}
	}
	pl := PriceList{Prices: map[string]float64{}}
	var fromTable []string
	for _, t := range types {
		if p := cache.Prices[t]; p > 0 {
			pl.Prices[t] = p
			continue
		}
		if p, ok := OnDemandPrice(region, t); ok {
			pl.Prices[t] = p
			fromTable = append(fromTable, t)
		}
	}
	table := EmbeddedPrices{}.OnDemandPrices(ctx, region, nil).Source
	live := "AWS Price List API, fetched " + cache.Fetched.Format("2006-01-02 15:04 MST")
	switch {
	case len(fromTable) == 0 && len(pl.Prices) > 0:
		pl.Source = live
	case len(fromTable) == len(pl.Prices):
		pl.Source = table
	default:
		pl.Source = live + "; " + table + " for " + strings.Join(fromTable, ", ")
	}
	if fetchErr != nil {
		pl.Notes = append(pl.Notes, fmt.Sprintf("could not fetch on-demand prices (%v): using %s", fetchErr, table))
	}
	return pl
}

func (l *LivePrices) readCache(region string) *priceCache {
	if l.CacheDir == "" {
		return nil
	}
	data, err := os.ReadFile(l.cachePath(region))
	if err != nil {
		return nil
	}
	var c priceCache
	if json.Unmarshal(data, &c) != nil || c.Region != region || c.Prices == nil {
		return nil
	}
	return &c
}

func (l *LivePrices) writeCache(c *priceCache) {
	if l.CacheDir == "" {
		return
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err == nil {
		err = os.MkdirAll(l.CacheDir, 0o755)
	}
	if err == nil {
		tmp := l.cachePath(c.Region) + ".tmp"
		if err = os.WriteFile(tmp, data, 0o644); err == nil {
			err = os.Rename(tmp, l.cachePath(c.Region))
		}
	}
	if err != nil {
		l.log().Warn("caching on-demand prices", "err", err)
	}
}

// fetchTimeout bounds a fetch of prices.
const fetchTimeout = 20 * time.Second

// fetchBatch is how many types one GetProducts filter names.
const fetchBatch = 20

// fetch asks the Price List Query API for the Linux, shared-tenancy,
// no-software, used-capacity hourly price of each type in region.
func (l *LivePrices) fetch(ctx context.Context, region string, types []string) (map[string]float64, error) {
	if l.API == nil {
		return nil, errors.New("no pricing client")
	}
	// Prices are a nicety: a slow answer falls back to the table.
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	sorted := slices.Clone(types)
	sort.Strings(sorted)
	prices := map[string]float64{}
	for batch := range slices.Chunk(sorted, fetchBatch) {
		in := &pricing.GetProductsInput{
			ServiceCode:   aws.String("AmazonEC2"),
			FormatVersion: aws.String("aws_v1"),
			Filters: []ptypes.Filter{
				termMatch("regionCode", region),
				termMatch("operatingSystem", "Linux"),
				termMatch("tenancy", "Shared"),
				termMatch("preInstalledSw", "NA"),
				termMatch("capacitystatus", "Used"),
				termMatch("licenseModel", "No License required"),
				{Type: ptypes.FilterTypeAnyOf, Field: aws.String("instanceType"), Value: aws.String(strings.Join(batch, ","))},
			},
		}
		pages := pricing.NewGetProductsPaginator(l.API, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("reading on-demand prices: %w", err)
			}
			for _, doc := range page.PriceList {
				typ, p, err := parsePriceListItem(doc, region)
				if err != nil {
					return nil, fmt.Errorf("reading on-demand prices: %w", err)
				}
				if typ != "" && slices.Contains(batch, typ) {
					prices[typ] = p
				}
			}
		}
	}
	return prices, nil
}

func termMatch(field, value string) ptypes.Filter {
	return ptypes.Filter{Type: ptypes.FilterTypeTermMatch, Field: aws.String(field), Value: aws.String(value)}
}

// priceListItem is one product of a GetProducts answer.
type priceListItem struct {
	Product struct {
		Attributes map[string]string `json:"attributes"`
	} `json:"product"`
	Terms struct {
		OnDemand map[string]struct {
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

// parsePriceListItem reads one GetProducts document: the instance type
// and its hourly USD price, or "" when the document is not a plain Linux
// instance-hour of region (another operation, a $0 placeholder).
func parsePriceListItem(doc, region string) (string, float64, error) {
	var it priceListItem
	if err := json.Unmarshal([]byte(doc), &it); err != nil {
		return "", 0, fmt.Errorf("a price list item is not JSON: %w", err)
	}
	a := it.Product.Attributes
	if a["regionCode"] != region || a["operatingSystem"] != "Linux" || a["tenancy"] != "Shared" ||
		(a["operation"] != "" && a["operation"] != "RunInstances") || a["instanceType"] == "" {
		return "", 0, nil
	}
	for _, t := range it.Terms.OnDemand {
		for _, d := range t.PriceDimensions {
			s, ok := d.PricePerUnit["USD"]
			if d.Unit != "Hrs" || !ok {
				continue
			}
			p, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || p < 0 || math.IsInf(p, 0) || math.IsNaN(p) {
				return "", 0, fmt.Errorf("price %q of %s is not a number of dollars", s, a["instanceType"])
			}
			if p > 0 {
				return a["instanceType"], p, nil
			}
		}
	}
	return "", 0, nil
}
