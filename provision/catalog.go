package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// ErrUnknownType is the error (see errors.Is) for an instance type name
// that EC2 does not know, in this region.
var ErrUnknownType = errors.New("unknown instance type")

// DefaultFamilies are the instance families burst plans with when the user
// names no types: current-generation compute-optimised, general-purpose
// and memory-optimised x86_64 families, which 3D Slicer's Linux builds run
// on.
var DefaultFamilies = []string{"c7i", "c6i", "c6a", "m7i", "m6i", "r6i"}

// DefaultSizes are the sizes of DefaultFamilies that burst plans with:
// from 2 to 32 vCPUs, where one worker per core pays off and one
// instance's loss costs little.
var DefaultSizes = []string{"large", "xlarge", "2xlarge", "4xlarge", "8xlarge"}

// DefaultTypes returns the instance types planned with when none are
// named: every DefaultSizes size of every DefaultFamilies family.
func DefaultTypes() []string {
	var names []string
	for _, f := range DefaultFamilies {
		for _, s := range DefaultSizes {
			names = append(names, f+"."+s)
		}
	}
	return names
}

// describeBatch is the most names one DescribeInstanceTypes call takes.
const describeBatch = 100

// Catalog describes the named instance types (DefaultTypes() when names is
// empty), in the order of names, with duplicates removed. A name that EC2
// does not know gives an error that errors.Is ErrUnknownType and names it;
// other API errors are returned wrapped. It only reads.
func Catalog(ctx context.Context, api EC2API, names []string) ([]InstanceType, error) {
	if len(names) == 0 {
		names = DefaultTypes()
	}
	var uniq []string
	for _, n := range names {
		if !slices.Contains(uniq, n) {
			uniq = append(uniq, n)
		}
	}
	found := map[string]InstanceType{}
	for batch := range slices.Chunk(uniq, describeBatch) {
		in := &ec2.DescribeInstanceTypesInput{}
		for _, n := range batch {
			in.InstanceTypes = append(in.InstanceTypes, types.InstanceType(n))
		}
		pages := ec2.NewDescribeInstanceTypesPaginator(api, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				var ae smithy.APIError
				if errors.As(err, &ae) && ae.ErrorCode() == "InvalidInstanceType" {
					return nil, fmt.Errorf("%w: %s", ErrUnknownType, ae.ErrorMessage())
				}
				return nil, fmt.Errorf("describing instance types: %w", err)
			}
			for _, it := range page.InstanceTypes {
				t := convertInstanceType(it)
				found[t.Name] = t
			}
		}
	}
	out := make([]InstanceType, 0, len(uniq))
	var missing []string
	for _, n := range uniq {
		t, ok := found[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		out = append(out, t)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("%w: %s", ErrUnknownType, strings.Join(missing, ", "))
	}
	return out, nil
}

// convertInstanceType keeps what the planner needs of EC2's description.
func convertInstanceType(it types.InstanceTypeInfo) InstanceType {
	t := InstanceType{Name: string(it.InstanceType)}
	if it.VCpuInfo != nil {
		t.VCPUs = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
	}
	if it.MemoryInfo != nil {
		t.MemoryMiB = aws.ToInt64(it.MemoryInfo.SizeInMiB)
	}
	if it.GpuInfo != nil {
		for _, g := range it.GpuInfo.Gpus {
			t.GPUs += int(aws.ToInt32(g.Count))
		}
	}
	if it.ProcessorInfo != nil {
		archs := it.ProcessorInfo.SupportedArchitectures
		switch {
		case slices.Contains(archs, types.ArchitectureTypeX8664):
			t.Arch = string(types.ArchitectureTypeX8664)
		case slices.Contains(archs, types.ArchitectureTypeArm64):
			t.Arch = string(types.ArchitectureTypeArm64)
		case len(archs) > 0:
			t.Arch = string(archs[0])
		}
	}
	return t
}
