// Command pricegen rewrites burst's on-demand price table (ondemand.json in
// package provision) from AWS's public Price List bulk offer files for
// AmazonEC2: for each region it downloads the region's offer file (or
// reads a local copy with -file), keeps Linux instance-hours on shared
// tenancy with no pre-installed software, and replaces that region's
// prices in the table; other regions are kept.
//
//	go run ./internal/pricegen -out ondemand.json -region us-east-1,eu-west-1
//	go run ./internal/pricegen -out ondemand.json -region us-east-1 -file index.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/slicerburst/burst/provision"
)

// offerURL is where the bulk offer file of one region is published.
const offerURL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/%s/index.json"

func main() {
	out := flag.String("out", "ondemand.json", "price table `FILE` to rewrite")
	regions := flag.String("region", "us-east-1", "comma-separated `REGIONS` to refresh")
	file := flag.String("file", "", "read a local copy of one region's offer `FILE` instead of downloading it")
	families := flag.String("families", strings.Join(provision.DefaultFamilies, ","), "comma-separated instance `FAMILIES` to keep (all their sizes)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *out, strings.Split(*regions, ","), *file, strings.Split(*families, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "pricegen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out string, regions []string, file string, families []string) error {
	if file != "" && len(regions) != 1 {
		return errors.New("-file holds one region's prices: give one -region")
	}
	table := provision.PriceTable{Prices: map[string]map[string]float64{}}
	if data, err := os.ReadFile(out); err == nil {
		if err := json.Unmarshal(data, &table); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if table.Prices == nil {
		table.Prices = map[string]map[string]float64{}
	}
	keep := func(typ string) bool {
		fam, _, _ := strings.Cut(typ, ".")
		return slices.Contains(families, fam)
	}
	var dates []string
	for _, region := range regions {
		offer, err := readRegion(ctx, region, file, keep)
		if err != nil {
			return fmt.Errorf("%s: %w", region, err)
		}
		if len(offer.Prices) == 0 {
			return fmt.Errorf("%s: no matching prices in the offer file", region)
		}
		table.Prices[region] = offer.Prices
		if d, _, _ := strings.Cut(offer.PublicationDate, "T"); d != "" {
			dates = append(dates, d)
		}
		fmt.Fprintf(os.Stderr, "%s: %d instance types\n", region, len(offer.Prices))
	}
	table.Source = "AWS Price List bulk offer files for AmazonEC2 (" + fmt.Sprintf(offerURL, "REGION") + "): Linux, Shared tenancy, preInstalledSw NA, capacitystatus Used, OnDemand term"
	slices.Sort(dates)
	if len(dates) > 0 {
		table.AsOf = dates[len(dates)-1]
	}
	table.Note = "written by provision/internal/pricegen"
	data, err := json.MarshalIndent(table, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(data, '\n'), 0o644)
}

func readRegion(ctx context.Context, region, file string, keep func(string) bool) (*Offer, error) {
	f := Filter{Region: region, Keep: keep}
	if file != "" {
		r, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return ParseOffer(r, f)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf(offerURL, region), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading the offer file: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("downloading the offer file: %s: %s", resp.Status, b)
	}
	return ParseOffer(resp.Body, f)
}
