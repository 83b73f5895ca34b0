package provision

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// EC2API is the part of the EC2 API that burst calls, and nothing more:
// the real client (built once, in cmd/burst) satisfies it, and so do the
// tests' fakes. Keeping it this small is also the list of actions that the
// CLI user's IAM policy in terraform/ grants.
type EC2API interface {
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeSpotPriceHistory(ctx context.Context, in *ec2.DescribeSpotPriceHistoryInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error)
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, optFns ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	DeleteLaunchTemplate(ctx context.Context, in *ec2.DeleteLaunchTemplateInput, optFns ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error)
	CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, optFns ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// The tags that burst puts on every instance and volume it launches, and
// by which `burst down` and `burst gc` find them.
const (
	// TagRun is the run id.
	TagRun = "burst:run"
	// TagOwner is who launched it (the AWS caller or $USER).
	TagOwner = "burst:owner"
	// TagExpires is the instant (RFC 3339, UTC) after which the instance
	// has no reason to exist: the run's hard deadline.
	TagExpires = "burst:expires"
)

// Market is how an instance is bought.
type Market string

const (
	Spot     Market = "spot"
	OnDemand Market = "on-demand"
)

// InstanceType is what the planner needs to know of an EC2 instance type.
type InstanceType struct {
	Name      string
	VCPUs     int
	MemoryMiB int64
	GPUs      int
	// Arch is the CPU architecture, as EC2 names it (x86_64, arm64).
	Arch string
}

// Offer is an instance type on a market at a price.
type Offer struct {
	Type   InstanceType
	Market Market
	// PerHour is the price in US dollars per instance-hour.
	PerHour float64
}
