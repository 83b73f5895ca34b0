package provision

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

func TestCatalogConvertsInOrderAcrossPages(t *testing.T) {
	f := newCatalogFake()
	f.addType("c7i.2xlarge", 8, 16384, 0)
	f.addType("g5.xlarge", 4, 16384, 1)
	f.addType("c7g.large", 2, 4096, 0, types.ArchitectureTypeArm64)
	f.addType("t2.micro", 1, 1024, 0, types.ArchitectureTypeI386, types.ArchitectureTypeX8664)
	got, err := Catalog(context.Background(), f, []string{"t2.micro", "c7i.2xlarge", "g5.xlarge", "c7g.large", "c7i.2xlarge"})
	if err != nil {
		t.Fatal(err)
	}
	want := []InstanceType{
		{Name: "t2.micro", VCPUs: 1, MemoryMiB: 1024, Arch: "x86_64"},
		{Name: "c7i.2xlarge", VCPUs: 8, MemoryMiB: 16384, Arch: "x86_64"},
		{Name: "g5.xlarge", VCPUs: 4, MemoryMiB: 16384, GPUs: 1, Arch: "x86_64"},
		{Name: "c7g.large", VCPUs: 2, MemoryMiB: 4096, Arch: "arm64"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Catalog =\n%+v\nwant\n%+v", got, want)
	}
	// Four distinct names in pages of two: two calls, the second with the
	// first's token, and the duplicate asked once.
	if len(f.typeCalls) != 2 || aws.ToString(f.typeCalls[1].NextToken) != "2" {
		t.Errorf("calls = %d, want 2 pages", len(f.typeCalls))
	}
	if n := len(f.typeCalls[0].InstanceTypes); n != 4 {
		t.Errorf("asked for %d names, want 4 (duplicates removed)", n)
	}
}

func TestCatalogDefaultsAndBatches(t *testing.T) {
	f := newCatalogFake()
	f.pageSize = 1000
	for _, n := range DefaultTypes() {
		f.addType(n, 2, 4096, 0)
	}
	got, err := Catalog(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(DefaultFamilies)*len(DefaultSizes) || got[0].Name != "c7i.large" {
		t.Errorf("default catalog: %d types starting %v", len(got), got[0])
	}

	// 150 names take two calls of at most 100.
	f = newCatalogFake()
	f.pageSize = 1000
	var names []string
	for i := range 150 {
		n := fmt.Sprintf("x%d.large", i)
		f.addType(n, 2, 4096, 0)
		names = append(names, n)
	}
	got, err = Catalog(context.Background(), f, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 150 || len(f.typeCalls) != 2 || len(f.typeCalls[0].InstanceTypes) != 100 {
		t.Errorf("150 names: got %d types in %d calls", len(got), len(f.typeCalls))
	}
}

func TestCatalogUnknownType(t *testing.T) {
	f := newCatalogFake()
	f.addType("c7i.2xlarge", 8, 16384, 0)
	_, err := Catalog(context.Background(), f, []string{"c7i.2xlarge", "c7i.huge"})
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "c7i.huge") {
		t.Errorf("unknown type: err = %v, want ErrUnknownType naming c7i.huge", err)
	}
}

// silentFake answers without the types it does not know, instead of
// failing, so that Catalog must notice the name missing from the answer.
type silentFake struct{ *catalogFake }

func (f silentFake) DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, opts ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	known := *in
	known.InstanceTypes = nil
	for _, n := range in.InstanceTypes {
		if _, ok := f.types[string(n)]; ok {
			known.InstanceTypes = append(known.InstanceTypes, n)
		}
	}
	return f.catalogFake.DescribeInstanceTypes(ctx, &known, opts...)
}

func TestCatalogNameMissingFromAnswer(t *testing.T) {
	f := newCatalogFake()
	f.addType("c7i.2xlarge", 8, 16384, 0)
	_, err := Catalog(context.Background(), silentFake{f}, []string{"m7i.large", "c7i.2xlarge"})
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "m7i.large") {
		t.Errorf("missing from answer: err = %v, want ErrUnknownType naming m7i.large", err)
	}
}

func TestCatalogAPIError(t *testing.T) {
	f := newCatalogFake()
	f.addType("c7i.2xlarge", 8, 16384, 0)
	f.failNext("DescribeInstanceTypes", &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "slow down"})
	_, err := Catalog(context.Background(), f, []string{"c7i.2xlarge"})
	if err == nil || errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "describing instance types") {
		t.Errorf("throttled: err = %v, want a wrapped API error, not ErrUnknownType", err)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "RequestLimitExceeded" {
		t.Errorf("the API error is not kept: %v", err)
	}
}

func TestSpotPrices(t *testing.T) {
	f := newCatalogFake()
	f.addSpot("c7i.2xlarge", "us-east-1a", "Linux/UNIX", "0.1500")
	f.addSpot("c7i.2xlarge", "us-east-1b", "Linux/UNIX", "0.1210")
	f.addSpot("c7i.2xlarge", "us-east-1c", "Linux/UNIX (Amazon VPC)", "0.1300")
	f.addSpot("c7i.2xlarge", "us-east-1d", "Windows", "0.0100")
	f.addSpot("c6i.large", "us-east-1a", "Linux/UNIX", "0.0400")
	f.addSpot("m6i.large", "us-east-1a", "Linux/UNIX", "0.0300") // not asked for
	before := time.Now()
	got, err := SpotPrices(context.Background(), f, []string{"c7i.2xlarge", "c6i.large", "r6i.large"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"c7i.2xlarge": 0.121, "c6i.large": 0.04}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SpotPrices = %v, want %v", got, want)
	}
	if len(f.spotCalls) < 2 {
		t.Errorf("%d calls: the answer's pages were not all read", len(f.spotCalls))
	}
	in := f.spotCalls[0]
	if !reflect.DeepEqual(in.ProductDescriptions, []string{"Linux/UNIX"}) {
		t.Errorf("product descriptions %v", in.ProductDescriptions)
	}
	if st := aws.ToTime(in.StartTime); st.Before(before.Add(-time.Second)) || st.After(time.Now()) {
		t.Errorf("StartTime %v is not now", st)
	}

	f.failNext("DescribeSpotPriceHistory", &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "no"})
	if _, err := SpotPrices(context.Background(), f, []string{"c6i.large"}); err == nil || !strings.Contains(err.Error(), "reading spot prices") {
		t.Errorf("denied: err = %v", err)
	}
}

func TestOnDemandTable(t *testing.T) {
	table, err := OnDemandPrices()
	if err != nil {
		t.Fatal(err)
	}
	if table.Source == "" || table.AsOf == "" {
		t.Errorf("the table says nothing of its source (%q) or date (%q)", table.Source, table.AsOf)
	}
	for _, region := range []string{"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1"} {
		for _, typ := range DefaultTypes() {
			p, ok := OnDemandPrice(region, typ)
			if !ok || p <= 0 || p > 10 {
				t.Errorf("%s %s: %v %v", region, typ, p, ok)
			}
		}
		// Within a family, a size twice as big costs twice as much.
		small, _ := OnDemandPrice(region, "c6i.large")
		big, _ := OnDemandPrice(region, "c6i.xlarge")
		if diff := big - 2*small; diff > 1e-4 || diff < -1e-4 {
			t.Errorf("%s: c6i.xlarge %v is not twice c6i.large %v", region, big, small)
		}
	}
	if p, ok := OnDemandPrice("us-east-1", "c6i.large"); !ok || p != 0.085 {
		t.Errorf("us-east-1 c6i.large = %v, %v", p, ok)
	}
	if _, ok := OnDemandPrice("ap-south-2", "c6i.large"); ok {
		t.Error("a region missing from the table has a price")
	}
	if _, ok := OnDemandPrice("us-east-1", "x9.huge"); ok {
		t.Error("a type missing from the table has a price")
	}
}

func TestOffers(t *testing.T) {
	its := []InstanceType{{Name: "c6i.large", VCPUs: 2}, {Name: "zz9.large", VCPUs: 2}}
	spot := map[string]float64{"c6i.large": 0.03}
	offers, notes := Offers("us-east-1", its, spot, []Market{Spot, OnDemand})
	want := []Offer{
		{Type: its[0], Market: Spot, PerHour: 0.03},
		{Type: its[0], Market: OnDemand, PerHour: 0.085},
	}
	if !reflect.DeepEqual(offers, want) {
		t.Errorf("offers = %+v, want %+v", offers, want)
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "zz9.large") || !strings.Contains(notes[1], "on-demand") {
		t.Errorf("notes = %q", notes)
	}
	offers, notes = Offers("us-east-1", its[:1], spot, []Market{OnDemand})
	if len(offers) != 1 || offers[0].Market != OnDemand || len(notes) != 0 {
		t.Errorf("on-demand only: %+v %q", offers, notes)
	}
}
