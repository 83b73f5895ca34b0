package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/slicerburst/burst/staging"
)

// MetadataAPI is the one EC2 instance metadata call burst makes, with the
// SDK's signature; *imds.Client has it.
type MetadataAPI interface {
	GetMetadata(ctx context.Context, in *imds.GetMetadataInput, optFns ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
}

// Instance metadata paths (under /latest/meta-data/).
const (
	mdInstanceID    = "instance-id"
	mdInstanceType  = "instance-type"
	mdZone          = "placement/availability-zone"
	mdSpotAction    = "spot/instance-action"
	mdRebalance     = "events/recommendations/rebalance"
	metadataMaxSize = 64 << 10
)

// EC2Notices reads spot interruption notices and rebalance recommendations
// from the instance metadata service. It is a NoticeSource.
type EC2Notices struct {
	API MetadataAPI
	// Instance is the instance id that notices name.
	Instance string
}

// Notice asks for spot/instance-action, then, when there is none, for
// events/recommendations/rebalance. Not found (404) means no notice. A
// notice whose body cannot be read as documented is still a notice, with
// its Action and Time left empty: the metadata service says the machine
// is going, and that matters more than when.
func (e *EC2Notices) Notice(ctx context.Context) (*Notice, error) {
	body, found, err := getMetadata(ctx, e.API, mdSpotAction)
	if err != nil {
		return nil, err
	}
	if found {
		n, _ := parseInstanceAction(body)
		n.Instance = e.Instance
		return &n, nil
	}
	body, found, err = getMetadata(ctx, e.API, mdRebalance)
	if err != nil {
		return nil, err
	}
	if found {
		n, _ := parseRebalance(body)
		n.Instance = e.Instance
		return &n, nil
	}
	return nil, nil
}

// LookupInstance reads the instance's id, type and availability zone from
// the instance metadata service. It fails when any is missing or when the
// id cannot name a worker.
func LookupInstance(ctx context.Context, api MetadataAPI) (Instance, error) {
	var in Instance
	for _, f := range []struct {
		path string
		dst  *string
	}{{mdInstanceID, &in.ID}, {mdInstanceType, &in.Type}, {mdZone, &in.Zone}} {
		body, found, err := getMetadata(ctx, api, f.path)
		if err != nil {
			return Instance{}, err
		}
		if !found {
			return Instance{}, fmt.Errorf("instance metadata %s: not found", f.path)
		}
		*f.dst = strings.TrimSpace(string(body))
	}
	if !staging.ValidID(in.ID) {
		return Instance{}, fmt.Errorf("instance metadata: instance id %q cannot name a worker", in.ID)
	}
	return in, nil
}

// getMetadata reads one metadata path; found is false on 404.
func getMetadata(ctx context.Context, api MetadataAPI, path string) (body []byte, found bool, err error) {
	out, err := api.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		var st interface{ HTTPStatusCode() int }
		if errors.As(err, &st) && st.HTTPStatusCode() == http.StatusNotFound {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading instance metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	body, err = io.ReadAll(io.LimitReader(out.Content, metadataMaxSize))
	if err != nil {
		return nil, false, fmt.Errorf("reading instance metadata %s: %w", path, err)
	}
	return body, true, nil
}

// parseInstanceAction reads spot/instance-action:
// {"action": "terminate", "time": "2017-09-18T08:22:00Z"}. The notice it
// returns is a SpotInterruption even when the body is unreadable (then
// with the error).
func parseInstanceAction(body []byte) (Notice, error) {
	n := Notice{Kind: SpotInterruption}
	var v struct {
		Action string `json:"action"`
		Time   string `json:"time"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return n, fmt.Errorf("spot instance action: %w", err)
	}
	switch a := strings.ToLower(v.Action); a {
	case "terminate", "stop", "hibernate":
		n.Action = a
	default:
		return n, fmt.Errorf("spot instance action: unknown action %q", v.Action)
	}
	t, err := time.Parse(time.RFC3339, v.Time)
	if err != nil {
		return n, fmt.Errorf("spot instance action: time: %w", err)
	}
	n.Time = t.UTC()
	return n, nil
}

// parseRebalance reads events/recommendations/rebalance:
// {"noticeTime": "2020-11-05T08:22:00Z"}. The notice it returns is a
// Rebalance even when the body is unreadable (then with the error).
func parseRebalance(body []byte) (Notice, error) {
	n := Notice{Kind: Rebalance}
	var v struct {
		NoticeTime string `json:"noticeTime"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return n, fmt.Errorf("rebalance recommendation: %w", err)
	}
	t, err := time.Parse(time.RFC3339, v.NoticeTime)
	if err != nil {
		return n, fmt.Errorf("rebalance recommendation: notice time: %w", err)
	}
	n.Time = t.UTC()
	return n, nil
}
