package images

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/provision"
	"github.com/slicerburst/burst/staging"
)

// provision.EC2API is what the CLI builds; this package must accept it.
var _ DescribeImagesAPI = provision.EC2API(nil)

// fakeEC2 is a stateful DescribeImages: images of this account ("self")
// and of others, the Owners and tag filters applied as EC2 applies them,
// pages of pageSize, every request recorded, and an error to inject per
// call number.
type fakeEC2 struct {
	mu       sync.Mutex
	images   []types.Image
	owners   map[string]string // image id -> owner: "self" or another
	pageSize int
	calls    []*ec2.DescribeImagesInput
	errAt    map[int]error // call number (from 1) -> error
}

func (f *fakeEC2) add(owner string, im types.Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owners == nil {
		f.owners = map[string]string{}
	}
	f.images = append(f.images, im)
	f.owners[aws.ToString(im.ImageId)] = owner
}

func (f *fakeEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if err := f.errAt[len(f.calls)]; err != nil {
		return nil, err
	}
	var match []types.Image
	for _, im := range f.images {
		if len(in.Owners) > 0 && !slices.Contains(in.Owners, f.owners[aws.ToString(im.ImageId)]) {
			continue
		}
		ok := true
		for _, flt := range in.Filters {
			key, isTag := strings.CutPrefix(aws.ToString(flt.Name), "tag:")
			if !isTag {
				return nil, fmt.Errorf("fake: filter %s not supported", aws.ToString(flt.Name))
			}
			if !slices.Contains(flt.Values, tag(im.Tags, key)) {
				ok = false
			}
		}
		if ok {
			match = append(match, im)
		}
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	size := f.pageSize
	if size == 0 {
		size = 1000
	}
	end := min(start+size, len(match))
	out := &ec2.DescribeImagesOutput{Images: match[start:end]}
	if end < len(match) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func image(id, slicer, protocol, created string, state types.ImageState) types.Image {
	im := types.Image{
		ImageId:      aws.String(id),
		Name:         aws.String("burst-worker-slicer-" + slicer + "-p" + protocol + "-" + id),
		State:        state,
		Architecture: types.ArchitectureValuesX8664,
		Tags: []types.Tag{
			{Key: aws.String(TagImage), Value: aws.String(ImageWorker)},
			{Key: aws.String(TagSlicerVersion), Value: aws.String(slicer)},
			{Key: aws.String(TagProtocol), Value: aws.String(protocol)},
			{Key: aws.String("Name"), Value: aws.String("burst-worker")},
		},
	}
	if created != "" {
		im.CreationDate = aws.String(created)
	}
	return im
}

func ids(list []Image) []string {
	var out []string
	for _, im := range list {
		out = append(out, im.ID)
	}
	return out
}

func newFake() *fakeEC2 {
	f := &fakeEC2{pageSize: 2}
	f.add("self", image("ami-00000001", "5.6.2", "1", "2024-03-01T10:00:00.000Z", types.ImageStateAvailable))
	f.add("self", image("ami-00000002", "5.8.1", "1", "2025-02-01T10:00:00.000Z", types.ImageStateAvailable))
	f.add("self", image("ami-00000003", "5.8.1", "1", "2025-06-01T10:00:00.000Z", types.ImageStatePending))
	f.add("self", image("ami-00000004", "5.8.1", "2", "2025-07-01T10:00:00.000Z", types.ImageStateAvailable))
	f.add("self", image("ami-00000005", "5.8.1", "x", "", types.ImageStateFailed))
	// Not burst's: someone else's with the tags, and one of ours without.
	f.add("099720109477", image("ami-0000000a", "5.8.1", "1", "2026-01-01T10:00:00.000Z", types.ImageStateAvailable))
	other := image("ami-0000000b", "5.8.1", "1", "2026-01-01T10:00:00.000Z", types.ImageStateAvailable)
	other.Tags = other.Tags[1:]
	f.add("self", other)
	return f
}

func TestList(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	list, err := List(ctx, f, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{"ami-00000004", "ami-00000003", "ami-00000002", "ami-00000001", "ami-00000005"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v (newest first, undated last, only ours)", got, want)
	}
	if len(f.calls) != 3 {
		t.Errorf("%d calls for 5 images in pages of 2, want 3", len(f.calls))
	}
	in := f.calls[0]
	if !slices.Equal(in.Owners, []string{"self"}) || len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "tag:burst:image" {
		t.Errorf("request: owners %v, filters %+v", in.Owners, in.Filters)
	}
	want := Image{
		ID: "ami-00000002", Name: "burst-worker-slicer-5.8.1-p1-ami-00000002", SlicerVersion: "5.8.1", Protocol: 1,
		Created: time.Date(2025, 2, 1, 10, 0, 0, 0, time.UTC), State: "available", Architecture: "x86_64",
	}
	if list[2] != want {
		t.Errorf("image %+v\nwant %+v", list[2], want)
	}
	if list[4].Protocol != 0 || !list[4].Created.IsZero() || list[4].State != "failed" {
		t.Errorf("undated image with a bad protocol tag: %+v", list[4])
	}

	// One protocol: filtered by EC2, and again here.
	f.calls = nil
	list, err = List(ctx, f, ListOptions{Protocol: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{"ami-00000003", "ami-00000002", "ami-00000001"}; !slices.Equal(got, want) {
		t.Fatalf("List protocol 1 = %v, want %v", got, want)
	}
	if n := len(f.calls[0].Filters); n != 2 || aws.ToString(f.calls[0].Filters[1].Name) != "tag:burst:protocol" || f.calls[0].Filters[1].Values[0] != "1" {
		t.Errorf("protocol filter: %+v", f.calls[0].Filters)
	}

	// None: an empty list, not an error.
	list, err = List(ctx, &fakeEC2{}, ListOptions{})
	if err != nil || len(list) != 0 {
		t.Fatalf("empty account: %v, %v", list, err)
	}

	// An error on the second page is returned, wrapped.
	boom := errors.New("throttled")
	f.errAt = map[int]error{2: boom}
	f.calls = nil
	if _, err := List(ctx, f, ListOptions{}); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "listing burst images: ") {
		t.Fatalf("page error: %v", err)
	}
}

func TestNewest(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	im, err := Newest(ctx, f, "eu-west-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	// ami-00000003 is newer but still pending.
	if im.ID != "ami-00000002" {
		t.Fatalf("Newest protocol 1 = %s, want ami-00000002", im.ID)
	}
	if im, err := Newest(ctx, f, "eu-west-1", 2); err != nil || im.ID != "ami-00000004" {
		t.Fatalf("Newest protocol 2 = %v, %v", im, err)
	}

	_, err = Newest(ctx, f, "eu-west-1", 3)
	var nie *NoImageError
	if !errors.Is(err, ErrNoImage) || !errors.As(err, &nie) {
		t.Fatalf("protocol 3: %v", err)
	}
	want := "no burst AMI for protocol 3 in eu-west-1 (there are images for protocol 1, 2, which this burst does not speak): build one with burst image build, or pass --ami"
	if err.Error() != want {
		t.Fatalf("error %q\nwant  %q", err, want)
	}

	// Only a pending one.
	pending := &fakeEC2{}
	pending.add("self", image("ami-00000009", "5.8.1", strconv.Itoa(staging.Protocol), "2025-06-01T10:00:00Z", types.ImageStatePending))
	_, err = Newest(ctx, pending, "us-east-1", staging.Protocol)
	if want := fmt.Sprintf("no burst AMI for protocol %d in us-east-1 that is available (ami-00000009 is pending): build one", staging.Protocol); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("pending: %v", err)
	}

	// None at all: the message of the brief.
	_, err = Newest(ctx, &fakeEC2{}, "us-east-1", 1)
	if err == nil || err.Error() != "no burst AMI for protocol 1 in us-east-1: build one with burst image build, or pass --ami" {
		t.Fatalf("none: %v", err)
	}

	// An API error is not "no image".
	f.errAt = map[int]error{len(f.calls) + 1: errors.New("UnauthorizedOperation")}
	if _, err := Newest(ctx, f, "eu-west-1", 1); err == nil || errors.Is(err, ErrNoImage) {
		t.Fatalf("API error: %v", err)
	}
}
