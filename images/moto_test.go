package images

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/internal/testmoto"
	"github.com/slicerburst/burst/staging"
)

// registerBurstImage registers an image in moto and tags it as the Packer
// template does.
func registerBurstImage(ctx context.Context, t *testing.T, c *ec2.Client, name, slicer string, protocol int) string {
	t.Helper()
	out, err := c.RegisterImage(ctx, &ec2.RegisterImageInput{
		Name:           aws.String(name),
		Architecture:   types.ArchitectureValuesX8664,
		RootDeviceName: aws.String("/dev/sda1"),
	})
	if err != nil {
		t.Fatalf("RegisterImage: %v", err)
	}
	id := aws.ToString(out.ImageId)
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{id},
		Tags: []types.Tag{
			{Key: aws.String(TagImage), Value: aws.String(ImageWorker)},
			{Key: aws.String(TagSlicerVersion), Value: aws.String(slicer)},
			{Key: aws.String(TagProtocol), Value: aws.String(strconv.Itoa(protocol))},
		},
	})
	if err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	return id
}

// TestLookupMoto: List and Newest against moto's EC2: only this account's
// images tagged burst:image = worker, newest first, by protocol.
func TestLookupMoto(t *testing.T) {
	srv := testmoto.Start(t)
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// moto starts with many public images; none is burst's.
	list, err := List(ctx, c, ListOptions{})
	if err != nil || len(list) != 0 {
		t.Fatalf("fresh moto: %v, %v", ids(list), err)
	}
	_, err = Newest(ctx, c, testmoto.Region, staging.Protocol)
	if err == nil || err.Error() != fmt.Sprintf("no burst AMI for protocol %d in us-east-1: build one with burst image build, or pass --ami", staging.Protocol) {
		t.Fatalf("fresh moto: %v", err)
	}

	old := registerBurstImage(ctx, t, c, "burst-worker-old", "5.6.2", staging.Protocol)
	time.Sleep(1100 * time.Millisecond) // creation dates have whole seconds
	other := registerBurstImage(ctx, t, c, "burst-worker-next", "5.8.1", staging.Protocol+1)
	time.Sleep(1100 * time.Millisecond)
	newest := registerBurstImage(ctx, t, c, "burst-worker-new", "5.8.1", staging.Protocol)
	// An image of ours that is not burst's.
	if _, err := c.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("unrelated"), RootDeviceName: aws.String("/dev/sda1")}); err != nil {
		t.Fatal(err)
	}

	list, err = List(ctx, c, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{newest, other, old}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	for _, im := range list {
		if im.Created.IsZero() || im.State != StateAvailable || im.SlicerVersion == "" || im.Name == "" {
			t.Errorf("image from moto lacks fields: %+v", im)
		}
	}
	t.Logf("from moto: %+v", list[0])

	list, err = List(ctx, c, ListOptions{Protocol: staging.Protocol})
	if err != nil || !slices.Equal(ids(list), []string{newest, old}) {
		t.Fatalf("List protocol %d = %v, %v", staging.Protocol, ids(list), err)
	}
	im, err := Newest(ctx, c, testmoto.Region, staging.Protocol)
	if err != nil || im.ID != newest || im.SlicerVersion != "5.8.1" || im.Protocol != staging.Protocol {
		t.Fatalf("Newest = %+v, %v", im, err)
	}
	if im, err := Newest(ctx, c, testmoto.Region, staging.Protocol+1); err != nil || im.ID != other {
		t.Fatalf("Newest protocol %d = %+v, %v", staging.Protocol+1, im, err)
	}

	// Deregistered: gone from the list.
	if _, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(newest)}); err != nil {
		t.Fatal(err)
	}
	if im, err := Newest(ctx, c, testmoto.Region, staging.Protocol); err != nil || im.ID != old {
		t.Fatalf("after deregistering the newest: %+v, %v", im, err)
	}
}
