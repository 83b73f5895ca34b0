package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// catalogFake is a stateful EC2API for the catalog and price tests: it
// knows some instance types and spot prices, answers in pages of
// pageSize, records every call's input, and fails calls on demand.
type catalogFake struct {
	mu       sync.Mutex
	types    map[string]types.InstanceTypeInfo
	spot     []types.SpotPrice
	pageSize int
	// fail holds errors to return, in order, per method name.
	fail map[string][]error

	typeCalls []*ec2.DescribeInstanceTypesInput
	spotCalls []*ec2.DescribeSpotPriceHistoryInput
}

func newCatalogFake() *catalogFake {
	return &catalogFake{types: map[string]types.InstanceTypeInfo{}, pageSize: 2, fail: map[string][]error{}}
}

// addType makes an x86_64 instance type known.
func (f *catalogFake) addType(name string, vcpus int32, memMiB int64, gpus int32, archs ...types.ArchitectureType) {
	if len(archs) == 0 {
		archs = []types.ArchitectureType{types.ArchitectureTypeX8664}
	}
	info := types.InstanceTypeInfo{
		InstanceType:  types.InstanceType(name),
		VCpuInfo:      &types.VCpuInfo{DefaultVCpus: aws.Int32(vcpus)},
		MemoryInfo:    &types.MemoryInfo{SizeInMiB: aws.Int64(memMiB)},
		ProcessorInfo: &types.ProcessorInfo{SupportedArchitectures: archs},
	}
	if gpus > 0 {
		info.GpuInfo = &types.GpuInfo{Gpus: []types.GpuDeviceInfo{{Count: aws.Int32(gpus)}}}
	}
	f.types[name] = info
}

func (f *catalogFake) addSpot(typ, az, product, price string) {
	f.spot = append(f.spot, types.SpotPrice{
		InstanceType:       types.InstanceType(typ),
		AvailabilityZone:   aws.String(az),
		ProductDescription: types.RIProductDescription(product),
		SpotPrice:          aws.String(price),
		Timestamp:          aws.Time(time.Now()),
	})
}

func (f *catalogFake) failNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], err)
}

func (f *catalogFake) injected(method string) error {
	if errs := f.fail[method]; len(errs) > 0 {
		f.fail[method] = errs[1:]
		return errs[0]
	}
	return nil
}

// page returns the items of one page and the next token.
func page[T any](all []T, token *string, size int) ([]T, *string, error) {
	start := 0
	if token != nil {
		n, err := strconv.Atoi(*token)
		if err != nil || n < 0 || n > len(all) {
			return nil, nil, &smithy.GenericAPIError{Code: "InvalidNextToken", Message: "bad token"}
		}
		start = n
	}
	end := min(start+size, len(all))
	var next *string
	if end < len(all) {
		next = aws.String(strconv.Itoa(end))
	}
	return all[start:end], next, nil
}

func (f *catalogFake) DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typeCalls = append(f.typeCalls, in)
	if err := f.injected("DescribeInstanceTypes"); err != nil {
		return nil, err
	}
	if len(in.InstanceTypes) > 100 {
		return nil, &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "too many instance types"}
	}
	var all []types.InstanceTypeInfo
	var unknown []string
	for _, n := range in.InstanceTypes {
		info, ok := f.types[string(n)]
		if !ok {
			unknown = append(unknown, string(n))
			continue
		}
		all = append(all, info)
	}
	if len(unknown) > 0 {
		return nil, &smithy.GenericAPIError{Code: "InvalidInstanceType", Message: fmt.Sprintf("The following supplied instance types do not exist: [%s]", strings.Join(unknown, ", "))}
	}
	items, next, err := page(all, in.NextToken, f.pageSize)
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeInstanceTypesOutput{InstanceTypes: items, NextToken: next}, nil
}

func (f *catalogFake) DescribeSpotPriceHistory(ctx context.Context, in *ec2.DescribeSpotPriceHistoryInput, _ ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spotCalls = append(f.spotCalls, in)
	if err := f.injected("DescribeSpotPriceHistory"); err != nil {
		return nil, err
	}
	var all []types.SpotPrice
	for _, sp := range f.spot {
		if len(in.InstanceTypes) > 0 && !slices.Contains(in.InstanceTypes, sp.InstanceType) {
			continue
		}
		if len(in.ProductDescriptions) > 0 && !slices.ContainsFunc(in.ProductDescriptions, func(d string) bool {
			return strings.HasPrefix(string(sp.ProductDescription), d)
		}) {
			continue
		}
		all = append(all, sp)
	}
	items, next, err := page(all, in.NextToken, f.pageSize)
	if err != nil {
		return nil, err
	}
	return &ec2.DescribeSpotPriceHistoryOutput{SpotPriceHistory: items, NextToken: next}, nil
}

var errNotFaked = errors.New("not part of catalogFake")

func (f *catalogFake) DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	return nil, errNotFaked
}

func (f *catalogFake) CreateLaunchTemplate(context.Context, *ec2.CreateLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error) {
	return nil, errNotFaked
}

func (f *catalogFake) DeleteLaunchTemplate(context.Context, *ec2.DeleteLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error) {
	return nil, errNotFaked
}

func (f *catalogFake) CreateFleet(context.Context, *ec2.CreateFleetInput, ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	return nil, errNotFaked
}

func (f *catalogFake) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return nil, errNotFaked
}

func (f *catalogFake) TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	return nil, errNotFaked
}
