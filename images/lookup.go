// Package images finds the burst worker images (AMIs) that the Packer
// template in this folder builds, and carries that template inside the burst
// binary so that `burst image build` works wherever burst is installed.
package images

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The tags the template puts on every image (see burst-slicer.pkr.hcl),
// by which burst finds them.
const (
	// TagImage marks a burst image; its value is ImageWorker.
	TagImage = "burst:image"
	// TagSlicerVersion is the 3D Slicer release in the image.
	TagSlicerVersion = "burst:slicer-version"
	// TagProtocol is the run-layout protocol of the image's burst binary
	// (staging.Protocol).
	TagProtocol = "burst:protocol"

	// ImageWorker is the value of TagImage on worker images.
	ImageWorker = "worker"
)

// StateAvailable is the state of an image that instances can boot from.
const StateAvailable = "available"

// DescribeImagesAPI is the one EC2 call this package makes. The EC2 client,
// and provision.EC2API, satisfy it.
type DescribeImagesAPI interface {
	DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
}

// Image is a burst worker image.
type Image struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// SlicerVersion is the 3D Slicer release installed, from its tag.
	SlicerVersion string `json:"slicer_version"`
	// Protocol is the run-layout protocol of its burst binary, from its
	// tag; 0 when the tag is not a number.
	Protocol int `json:"protocol"`
	// Created is when the image was registered; zero when EC2 did not
	// say.
	Created time.Time `json:"created"`
	// State is EC2's image state: pending, available, failed, ...
	State        string `json:"state"`
	Architecture string `json:"architecture"`
}

// ListOptions narrow List.
type ListOptions struct {
	// Protocol, when above 0, keeps only the images of that protocol.
	Protocol int
}

// List returns the burst worker images that this account owns in the
// client's region, newest first, in every state. It reads every page. It
// returns an empty list, not an error, when there are none.
func List(ctx context.Context, api DescribeImagesAPI, opts ListOptions) ([]Image, error) {
	in := &ec2.DescribeImagesInput{
		Owners: []string{"self"},
		Filters: []types.Filter{
			{Name: aws.String("tag:" + TagImage), Values: []string{ImageWorker}},
		},
	}
	if opts.Protocol > 0 {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("tag:" + TagProtocol), Values: []string{strconv.Itoa(opts.Protocol)}})
	}
	var list []Image
	p := ec2.NewDescribeImagesPaginator(api, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing burst images: %w", err)
		}
		for _, im := range out.Images {
			img := fromEC2(im)
			// The filters already say so; checked again so that a
			// lenient API cannot hand back another image.
			if tag(im.Tags, TagImage) != ImageWorker || opts.Protocol > 0 && img.Protocol != opts.Protocol {
				continue
			}
			list = append(list, img)
		}
	}
	sortNewestFirst(list)
	return list, nil
}

// ErrNoImage is wrapped by Newest's error when no image fits.
var ErrNoImage = errors.New("no burst image")

// NoImageError says why Newest found no image: Others are the burst images
// of other protocols, or not available yet, that it passed over.
type NoImageError struct {
	Region   string
	Protocol int
	Others   []Image
}

func (e *NoImageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no burst AMI for protocol %d", e.Protocol)
	if e.Region != "" {
		fmt.Fprintf(&b, " in %s", e.Region)
	}
	var pending []string
	protocols := map[int]bool{}
	for _, o := range e.Others {
		if o.Protocol == e.Protocol {
			pending = append(pending, o.ID+" is "+o.State)
		} else if o.Protocol > 0 {
			protocols[o.Protocol] = true
		}
	}
	if len(pending) > 0 {
		fmt.Fprintf(&b, " that is available (%s)", strings.Join(pending, ", "))
	}
	if len(protocols) > 0 {
		var ps []string
		for p := range protocols {
			ps = append(ps, strconv.Itoa(p))
		}
		sort.Strings(ps)
		fmt.Fprintf(&b, " (there are images for protocol %s, which this burst does not speak)", strings.Join(ps, ", "))
	}
	b.WriteString(": build one with burst image build, or pass --ami")
	return b.String()
}

func (e *NoImageError) Is(target error) bool { return target == ErrNoImage }

// Newest returns the newest available burst worker image of protocol in
// the client's region. region names it in the error only. When there is
// none, the error is a *NoImageError (errors.Is ErrNoImage) that says what
// there is instead.
func Newest(ctx context.Context, api DescribeImagesAPI, region string, protocol int) (Image, error) {
	all, err := List(ctx, api, ListOptions{})
	if err != nil {
		return Image{}, err
	}
	for _, img := range all { // newest first
		if img.Protocol == protocol && img.State == StateAvailable {
			return img, nil
		}
	}
	return Image{}, &NoImageError{Region: region, Protocol: protocol, Others: all}
}

func fromEC2(im types.Image) Image {
	img := Image{
		ID:            aws.ToString(im.ImageId),
		Name:          aws.ToString(im.Name),
		SlicerVersion: tag(im.Tags, TagSlicerVersion),
		State:         string(im.State),
		Architecture:  string(im.Architecture),
	}
	if p, err := strconv.Atoi(tag(im.Tags, TagProtocol)); err == nil && p > 0 {
		img.Protocol = p
	}
	if t, err := time.Parse(time.RFC3339Nano, aws.ToString(im.CreationDate)); err == nil {
		img.Created = t.UTC()
	}
	return img
}

func tag(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// sortNewestFirst orders images by creation, newest first; images created
// at the same instant (or of unknown date, last) by id, for a stable order.
func sortNewestFirst(list []Image) {
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		return a.ID < b.ID
	})
}
