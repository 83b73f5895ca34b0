package provision

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slicerburst/burst/internal/testmoto"
)

// TestCatalogOnMoto reads the instance catalog and spot prices from moto's
// EC2 server. moto answers DescribeInstanceTypes from a copy of AWS's
// catalog (real vCPUs and memory), in one page, and fails unknown names
// with InvalidInstanceType as AWS does; its DescribeSpotPriceHistory is
// canned: $0.00001 for every type offered in each availability zone,
// whatever the product description or start time asked for.
func TestCatalogOnMoto(t *testing.T) {
	srv := testmoto.Start(t)
	api := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	its, err := Catalog(ctx, api, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(its) != len(DefaultTypes()) {
		t.Fatalf("%d default types, want %d", len(its), len(DefaultTypes()))
	}
	byName := map[string]InstanceType{}
	for _, it := range its {
		byName[it.Name] = it
		if it.Arch != "x86_64" || it.VCPUs < 2 || it.MemoryMiB < 4096 || it.GPUs != 0 {
			t.Errorf("default type %+v", it)
		}
	}
	for name, want := range map[string]InstanceType{
		"c7i.2xlarge": {Name: "c7i.2xlarge", VCPUs: 8, MemoryMiB: 16384, Arch: "x86_64"},
		"r6i.large":   {Name: "r6i.large", VCPUs: 2, MemoryMiB: 16384, Arch: "x86_64"},
		"c6a.8xlarge": {Name: "c6a.8xlarge", VCPUs: 32, MemoryMiB: 65536, Arch: "x86_64"},
	} {
		if byName[name] != want {
			t.Errorf("%s = %+v, want %+v", name, byName[name], want)
		}
	}
	gpu, err := Catalog(ctx, api, []string{"g5.xlarge", "c7g.large"})
	if err != nil {
		t.Fatal(err)
	}
	if gpu[0].GPUs != 1 || gpu[1].Arch != "arm64" {
		t.Errorf("g5.xlarge and c7g.large: %+v", gpu)
	}

	_, err = Catalog(ctx, api, []string{"c7i.2xlarge", "c7i.huge"})
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "c7i.huge") {
		t.Errorf("unknown type on moto: %v", err)
	}

	names := DefaultTypes()
	spot, err := SpotPrices(ctx, api, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if p, ok := spot[n]; !ok || p != 0.00001 {
			t.Errorf("spot price of %s on moto = %v, %v; want moto's canned 0.00001", n, p, ok)
		}
	}
	if len(spot) != len(names) {
		t.Errorf("%d spot prices for %d types", len(spot), len(names))
	}
}
