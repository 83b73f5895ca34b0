package provision

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

const testRun = "job-20261126-093012-1a2b"

func it(name string, vcpus int) InstanceType {
	return InstanceType{Name: name, VCPUs: vcpus, MemoryMiB: int64(vcpus) * 2048, Arch: "x86_64"}
}

// testOffers: two 8-vCPU types and a 16-vCPU one on spot, the two 8-vCPU
// ones on demand.
func testOffers() []Offer {
	return []Offer{
		{Type: it("c7i.2xlarge", 8), Market: Spot, PerHour: 0.15},
		{Type: it("m7i.2xlarge", 8), Market: Spot, PerHour: 0.18},
		{Type: it("c7i.4xlarge", 16), Market: Spot, PerHour: 0.32},
		{Type: it("c7i.2xlarge", 8), Market: OnDemand, PerHour: 0.357},
		{Type: it("m7i.2xlarge", 8), Market: OnDemand, PerHour: 0.4032},
	}
}

// newLaunchFake is a fake that knows the offers' types and prices.
func newLaunchFake(offers []Offer) *fleetFake {
	f := newFleetFake()
	for _, o := range offers {
		f.vcpus[o.Type.Name] = o.Type.VCPUs
		f.prices[fakePool(o.Market, o.Type.Name)] = o.PerHour
	}
	return f
}

func testLaunchSpec(t *testing.T, logs *bytes.Buffer) LaunchSpec {
	t.Helper()
	expires := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	ud, err := UserData(UserDataSpec{Run: "s3://my-bucket/burst/runs/" + testRun, Region: "us-east-1", Deadline: expires})
	if err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	return LaunchSpec{
		RunID:            testRun,
		Owner:            "ana",
		Expires:          expires,
		AMI:              "ami-0123456789abcdef0",
		InstanceProfile:  "burst-worker",
		SecurityGroupIDs: []string{"sg-1"},
		SubnetIDs:        []string{"subnet-a", "subnet-b"},
		UserData:         ud,
		Offers:           testOffers(),
		TargetVCPUs:      32,
		MaxPerHour:       2,
		AllowSpot:        true,
		AllowOnDemand:    true,
		Logger:           log,
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// check asserts the invariants of every launch: the instances listed are
// in the fake, not terminated, of the run, and within the budget.
func checkLaunched(t *testing.T, f *fleetFake, spec LaunchSpec, l *Launched) {
	t.Helper()
	total, vcpus := 0.0, 0
	for _, in := range l.Instances {
		f.mu.Lock()
		fi := f.find(in.ID)
		f.mu.Unlock()
		if fi == nil || fi.state == "terminated" || fi.state == "shutting-down" {
			t.Errorf("listed instance %s is not live in EC2", in.ID)
			continue
		}
		if fi.tags[TagRun] != spec.RunID || fi.tags[TagOwner] != spec.Owner || fi.tags[TagExpires] != spec.Expires.UTC().Format(time.RFC3339) {
			t.Errorf("instance %s tags %v", in.ID, fi.tags)
		}
		if in.Type != fi.typ || in.Market != fi.market {
			t.Errorf("instance %s listed as %s/%s, is %s/%s", in.ID, in.Type, in.Market, fi.typ, fi.market)
		}
		total += in.PerHour
		vcpus += in.VCPUs
	}
	if total > spec.MaxPerHour+1e-9 || l.PerHour > spec.MaxPerHour+1e-9 {
		t.Errorf("fleet costs %.4f $/h (listed %.4f), over the %.4f cap", total, l.PerHour, spec.MaxPerHour)
	}
	if vcpus != l.VCPUs || l.Shortfall != max(0, spec.TargetVCPUs-vcpus) {
		t.Errorf("VCPUs %d, Shortfall %d; instances have %d of %d", l.VCPUs, l.Shortfall, vcpus, spec.TargetVCPUs)
	}
	// A pool that answered an error is not asked again on that market.
	failed := map[string]bool{}
	for i, in := range f.fleetInputs {
		market := "spot"
		if in.SpotOptions == nil {
			market = "on-demand"
		}
		for _, ov := range in.LaunchTemplateConfigs[0].Overrides {
			if key := market + string(ov.InstanceType) + aws.ToString(ov.SubnetId); failed[key] {
				t.Errorf("request %d asks again for %s %s in %s, which failed before", i, market, ov.InstanceType, aws.ToString(ov.SubnetId))
			}
		}
		if out := f.fleetOutputs[i]; out != nil {
			for _, e := range out.Errors {
				failed[market+string(e.LaunchTemplateAndOverrides.Overrides.InstanceType)+aws.ToString(e.LaunchTemplateAndOverrides.Overrides.SubnetId)] = true
			}
		}
	}
	// Every live instance of the run is listed: nothing leaks.
	live := f.states(spec.RunID)
	if n := live["pending"] + live["running"]; n != len(l.Instances) {
		t.Errorf("%d live instances in EC2, %d listed", n, len(l.Instances))
	}
}

func TestLaunchSpot(t *testing.T) {
	f := newLaunchFake(testOffers())
	spec := testLaunchSpec(t, nil)
	l, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	checkLaunched(t, f, spec, l)
	if len(l.Instances) != 4 || l.VCPUs != 32 || l.Shortfall != 0 || len(l.Notes) != 0 {
		t.Fatalf("got %d instances, %d vCPUs, shortfall %d, notes %q; want 4 spot c7i.2xlarge", len(l.Instances), l.VCPUs, l.Shortfall, l.Notes)
	}
	for _, in := range l.Instances {
		if in.Type != "c7i.2xlarge" || in.Market != Spot || in.PerHour != 0.15 || in.VCPUs != 8 || in.State != "running" ||
			!strings.HasPrefix(in.AZ, "az-of-subnet-") || in.LaunchTime.IsZero() {
			t.Errorf("instance %+v", in)
		}
	}

	// The launch template.
	tpl := f.templates[TemplateName(testRun)]
	if tpl == nil {
		t.Fatal("no launch template " + TemplateName(testRun))
	}
	d := tpl.in.LaunchTemplateData
	if aws.ToString(d.ImageId) != spec.AMI || aws.ToString(d.IamInstanceProfile.Name) != "burst-worker" || d.IamInstanceProfile.Arn != nil ||
		!slices.Equal(d.SecurityGroupIds, []string{"sg-1"}) || d.InstanceInitiatedShutdownBehavior != types.ShutdownBehaviorTerminate {
		t.Errorf("template data %+v", d)
	}
	if m := d.MetadataOptions; m == nil || m.HttpTokens != types.LaunchTemplateHttpTokensStateRequired || aws.ToInt32(m.HttpPutResponseHopLimit) != 1 {
		t.Errorf("metadata options %+v: want IMDSv2 required, hop limit 1", m)
	}
	if ud, _ := base64.StdEncoding.DecodeString(aws.ToString(d.UserData)); string(ud) != spec.UserData {
		t.Error("template user data is not the spec's, base64-encoded")
	}
	if got := f.userDataOf(t, l.Instances[0].ID); got != spec.UserData {
		t.Error("the instance did not boot with the user data")
	}
	var tagged []types.ResourceType
	for _, ts := range d.TagSpecifications {
		tagged = append(tagged, ts.ResourceType)
		if !hasTags(ts.Tags, spec) {
			t.Errorf("%s tags %v", ts.ResourceType, ts.Tags)
		}
	}
	if !slices.Contains(tagged, types.ResourceTypeInstance) || !slices.Contains(tagged, types.ResourceTypeVolume) {
		t.Errorf("template tags %v, want instance and volume", tagged)
	}
	if len(tpl.in.TagSpecifications) != 1 || tpl.in.TagSpecifications[0].ResourceType != types.ResourceTypeLaunchTemplate || !hasTags(tpl.in.TagSpecifications[0].Tags, spec) {
		t.Errorf("the template itself is not tagged: %+v", tpl.in.TagSpecifications)
	}
	if tpl.token == "" {
		t.Error("no ClientToken on CreateLaunchTemplate")
	}

	// The fleet request.
	if len(f.fleetInputs) != 1 {
		t.Fatalf("%d fleet requests, want 1", len(f.fleetInputs))
	}
	in := f.fleetInputs[0]
	if in.Type != types.FleetTypeInstant || in.SpotOptions == nil || in.SpotOptions.AllocationStrategy != types.SpotAllocationStrategyPriceCapacityOptimized ||
		aws.ToString(in.SpotOptions.MaxTotalPrice) != "2.00000" || aws.ToInt32(in.TargetCapacitySpecification.TotalTargetCapacity) != 32 ||
		in.TargetCapacitySpecification.DefaultTargetCapacityType != types.DefaultTargetCapacityTypeSpot {
		t.Errorf("fleet request %+v", in)
	}
	if tok := aws.ToString(in.ClientToken); tok == "" || len(tok) > 64 {
		t.Errorf("ClientToken %q", tok)
	}
	ovs := in.LaunchTemplateConfigs[0].Overrides
	var got []string
	for _, ov := range ovs {
		got = append(got, string(ov.InstanceType)+"@"+aws.ToString(ov.SubnetId)+"="+strconv.Itoa(int(aws.ToFloat64(ov.WeightedCapacity))))
	}
	want := []string{"c7i.2xlarge@subnet-a=8", "c7i.2xlarge@subnet-b=8", "m7i.2xlarge@subnet-a=8", "m7i.2xlarge@subnet-b=8", "c7i.4xlarge@subnet-a=16", "c7i.4xlarge@subnet-b=16"}
	if !slices.Equal(got, want) {
		t.Errorf("overrides %q, want %q", got, want)
	}
	var fleetTagged []types.ResourceType
	for _, ts := range in.TagSpecifications {
		fleetTagged = append(fleetTagged, ts.ResourceType)
		if !hasTags(ts.Tags, spec) {
			t.Errorf("fleet %s tags %v", ts.ResourceType, ts.Tags)
		}
	}
	if !slices.Equal(fleetTagged, []types.ResourceType{types.ResourceTypeInstance, types.ResourceTypeFleet}) {
		t.Errorf("fleet tag specifications %v", fleetTagged)
	}
}

func hasTags(tags []types.Tag, spec LaunchSpec) bool {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m[TagRun] == spec.RunID && m[TagOwner] == spec.Owner && m[TagExpires] == spec.Expires.UTC().Format(time.RFC3339) && m["Name"] == "burst-"+spec.RunID
}

func TestLaunchFallsBackToOtherTypesThenOnDemand(t *testing.T) {
	f := newLaunchFake(testOffers())
	f.capErr[fakePool(Spot, "c7i.2xlarge")] = "InsufficientInstanceCapacity"
	f.capacity[fakePool(Spot, "m7i.2xlarge")] = 1
	f.capErr[fakePool(Spot, "c7i.4xlarge")] = "SpotMaxPriceTooLow"
	var logs bytes.Buffer
	spec := testLaunchSpec(t, &logs)
	spec.MaxPerHour = 5
	l, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	checkLaunched(t, f, spec, l)
	count := map[string]int{}
	for _, in := range l.Instances {
		count[string(in.Market)+" "+in.Type]++
	}
	// One spot m7i, the other 24 vCPUs on demand, the preferred type first.
	if count["spot m7i.2xlarge"] != 1 || count["on-demand c7i.2xlarge"] != 3 || len(l.Instances) != 4 || l.Shortfall != 0 {
		t.Errorf("launched %v, shortfall %d", count, l.Shortfall)
	}
	notes := strings.Join(l.Notes, "\n")
	for _, want := range []string{"InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "trying on-demand"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	for _, want := range []string{"code=InsufficientInstanceCapacity", "kind=capacity", "falling back to the next market"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
	// The on-demand request: on-demand options, prioritized, remaining
	// capacity and budget, only on-demand offers.
	last := f.fleetInputs[len(f.fleetInputs)-1]
	if last.OnDemandOptions == nil || last.OnDemandOptions.AllocationStrategy != types.FleetOnDemandAllocationStrategyPrioritized ||
		aws.ToInt32(last.TargetCapacitySpecification.TotalTargetCapacity) != 24 || last.SpotOptions != nil {
		t.Errorf("on-demand request %+v", last)
	}
	if p, _ := strconv.ParseFloat(aws.ToString(last.OnDemandOptions.MaxTotalPrice), 64); p > 5-0.18+1e-9 || p < 5-0.18-1e-4 {
		t.Errorf("on-demand MaxTotalPrice %v, want the budget left, 4.82", p)
	}
	for _, ov := range last.LaunchTemplateConfigs[0].Overrides {
		if ov.InstanceType == "c7i.4xlarge" {
			t.Error("on-demand request names a type with no on-demand offer")
		}
	}
	// Distinct requests carry distinct tokens.
	seen := map[string]bool{}
	for _, in := range f.fleetInputs {
		if seen[aws.ToString(in.ClientToken)] {
			t.Errorf("token %s reused for a different request", aws.ToString(in.ClientToken))
		}
		seen[aws.ToString(in.ClientToken)] = true
	}
}

func TestLaunchCapacityPerSubnet(t *testing.T) {
	// An error naming one subnet drops that pool only.
	f := newLaunchFake(testOffers())
	spec := testLaunchSpec(t, nil)
	spec.AllowOnDemand = false
	f.capErr[fakePool(Spot, "c7i.2xlarge")] = "Unsupported"
	spec.Offers = testOffers()[:1]
	spec.TargetVCPUs = 8
	_, err := Launch(context.Background(), f, spec)
	if !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("err %v, want ErrNoCapacity", err)
	}
	if !strings.Contains(err.Error(), "c7i.2xlarge in subnet-a: Unsupported") || !strings.Contains(err.Error(), "c7i.2xlarge in subnet-b: Unsupported") {
		t.Errorf("error does not say which pools failed how: %v", err)
	}
	if len(f.fleetInputs) != 1 {
		t.Errorf("%d requests after every pool failed, want 1", len(f.fleetInputs))
	}
}

func TestLaunchQuota(t *testing.T) {
	t.Run("nothing launched", func(t *testing.T) {
		f := newLaunchFake(testOffers())
		f.quota[OnDemand] = 4
		spec := testLaunchSpec(t, nil)
		spec.AllowSpot = false
		l, err := Launch(context.Background(), f, spec)
		if !errors.Is(err, ErrQuota) {
			t.Fatalf("err %v, want ErrQuota", err)
		}
		var qe *QuotaError
		if !errors.As(err, &qe) || qe.Code != "VcpuLimitExceeded" || qe.Market != OnDemand {
			t.Errorf("quota error %#v", qe)
		}
		for _, want := range []string{"VcpuLimitExceeded", "Running On-Demand Standard", "Service Quotas increase"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		if l == nil || len(l.Instances) != 0 || len(f.fleetInputs) != 1 {
			t.Errorf("launched %v after %d requests; want none after 1 (a quota stops)", l, len(f.fleetInputs))
		}
	})
	t.Run("some launched", func(t *testing.T) {
		f := newLaunchFake(testOffers())
		f.capacity[fakePool(Spot, "c7i.2xlarge")] = 1
		f.capErr[fakePool(Spot, "m7i.2xlarge")] = "InsufficientInstanceCapacity"
		f.capErr[fakePool(Spot, "c7i.4xlarge")] = "InsufficientInstanceCapacity"
		f.quota[OnDemand] = 8
		spec := testLaunchSpec(t, nil)
		l, err := Launch(context.Background(), f, spec)
		if err != nil {
			t.Fatalf("err %v: want the launched instances kept, no error", err)
		}
		checkLaunched(t, f, spec, l)
		if !errors.Is(l.Limit, ErrQuota) || l.VCPUs != 16 || l.Shortfall != 16 {
			t.Errorf("Limit %v, %d vCPUs, shortfall %d; want the quota, 16 and 16", l.Limit, l.VCPUs, l.Shortfall)
		}
		if notes := strings.Join(l.Notes, "\n"); !strings.Contains(notes, "which are kept") || !strings.Contains(notes, "Service Quotas") {
			t.Errorf("notes do not say the instances are kept and what to do:\n%s", notes)
		}
	})
	t.Run("API error", func(t *testing.T) {
		f := newLaunchFake(testOffers())
		f.fail["CreateFleet"] = []error{fakeAPIErr("InstanceLimitExceeded", "Your quota allows for 0 more running instance(s).")}
		spec := testLaunchSpec(t, nil)
		_, err := Launch(context.Background(), f, spec)
		if !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "InstanceLimitExceeded") {
			t.Fatalf("err %v, want ErrQuota naming InstanceLimitExceeded", err)
		}
	})
	t.Run("spot limit moves on to on-demand", func(t *testing.T) {
		f := newLaunchFake(testOffers())
		f.quota[Spot] = 0
		spec := testLaunchSpec(t, nil)
		l, err := Launch(context.Background(), f, spec)
		if err != nil {
			t.Fatal(err)
		}
		checkLaunched(t, f, spec, l)
		for _, in := range l.Instances {
			if in.Market != OnDemand {
				t.Errorf("instance %+v, want on-demand", in)
			}
		}
		spotRequests := 0
		for _, in := range f.fleetInputs {
			if in.SpotOptions != nil {
				spotRequests++
			}
		}
		if spotRequests != 1 {
			t.Errorf("%d spot requests, want 1: the spot limit applies to every type", spotRequests)
		}
		spec.AllowOnDemand = false
		spec.RunID += "x"
		if _, err := Launch(context.Background(), f, spec); !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "Spot Instance Requests") {
			t.Errorf("spot only: err %v, want the spot quota", err)
		}
	})
}

func TestLaunchRetriesThrottling(t *testing.T) {
	fastRetry(t)
	f := newLaunchFake(testOffers())
	f.throttle["CreateLaunchTemplate"] = 2
	f.throttle["CreateFleet"] = 3
	f.throttle["DescribeInstances"] = 1
	spec := testLaunchSpec(t, nil)
	l, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	checkLaunched(t, f, spec, l)
	if f.calls["CreateLaunchTemplate"] != 3 || f.calls["CreateFleet"] != 4 {
		t.Errorf("calls %v", f.calls)
	}
	if l.VCPUs != 32 {
		t.Errorf("%d vCPUs", l.VCPUs)
	}
}

func TestLaunchThrottledGivesUpOnContext(t *testing.T) {
	f := newLaunchFake(testOffers())
	f.throttle["CreateLaunchTemplate"] = 1 << 30
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Launch(ctx, f, testLaunchSpec(t, nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the context's", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to notice the context", d)
	}
}

func TestLaunchOtherErrorFails(t *testing.T) {
	f := newLaunchFake(testOffers())
	f.fail["CreateFleet"] = []error{fakeAPIErr("UnauthorizedOperation", "You are not authorized to perform this operation.")}
	_, err := Launch(context.Background(), f, testLaunchSpec(t, nil))
	if err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") || errors.Is(err, ErrQuota) {
		t.Fatalf("err %v", err)
	}
	if f.calls["CreateFleet"] != 1 {
		t.Errorf("%d CreateFleet calls: an authorization error is not retried", f.calls["CreateFleet"])
	}

	// After a first launched batch, an error still lists what runs.
	f = newLaunchFake(testOffers())
	f.capacity[fakePool(Spot, "c7i.2xlarge")] = 1
	f.capErr[fakePool(Spot, "m7i.2xlarge")] = "InsufficientInstanceCapacity"
	f.capErr[fakePool(Spot, "c7i.4xlarge")] = "InsufficientInstanceCapacity"
	spec := testLaunchSpec(t, nil)
	l, err := launchWithFailOnSecond(t, f, spec)
	if err == nil || l == nil || len(l.Instances) != 1 || !strings.Contains(err.Error(), l.Instances[0].ID) {
		t.Fatalf("err %v, launched %+v: want the error to name the running instance", err, l)
	}
}

// launchWithFailOnSecond makes the second CreateFleet call fail with an
// unexpected error.
func launchWithFailOnSecond(t *testing.T, f *fleetFake, spec LaunchSpec) (*Launched, error) {
	t.Helper()
	w := &failSecondFleet{fleetFake: f}
	return Launch(context.Background(), w, spec)
}

type failSecondFleet struct {
	*fleetFake
	n int
}

func (w *failSecondFleet) CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, opts ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	w.n++
	if w.n == 2 {
		return nil, fakeAPIErr("InvalidParameterValue", "something unexpected")
	}
	return w.fleetFake.CreateFleet(ctx, in, opts...)
}

func TestLaunchPartial(t *testing.T) {
	f := newLaunchFake(testOffers())
	f.capacity[fakePool(Spot, "c7i.2xlarge")] = 1
	f.capacity[fakePool(Spot, "m7i.2xlarge")] = 1
	f.capacity[fakePool(Spot, "c7i.4xlarge")] = 0
	f.capacity[fakePool(OnDemand, "c7i.2xlarge")] = 0
	f.capacity[fakePool(OnDemand, "m7i.2xlarge")] = 1
	spec := testLaunchSpec(t, nil)
	l, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	checkLaunched(t, f, spec, l)
	if len(l.Instances) != 3 || l.VCPUs != 24 || l.Shortfall != 8 || l.Limit != nil {
		t.Errorf("%d instances, %d vCPUs, shortfall %d, limit %v", len(l.Instances), l.VCPUs, l.Shortfall, l.Limit)
	}
	if notes := strings.Join(l.Notes, "\n"); !strings.Contains(notes, "launched 24 of 32 vCPUs") {
		t.Errorf("no shortfall note:\n%s", notes)
	}
	if n := len(f.fleetInputs); n > 2*roundsPerMarket {
		t.Errorf("%d fleet requests: not bounded", n)
	}
}

func TestLaunchIdempotent(t *testing.T) {
	f := newLaunchFake(testOffers())
	f.capErr[fakePool(Spot, "c7i.2xlarge")] = "InsufficientInstanceCapacity"
	spec := testLaunchSpec(t, nil)
	first, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The same launch again (a retried submit): the same tokens, so EC2
	// replays its answers and launches nothing more.
	second, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.IDs(), second.IDs()) {
		t.Errorf("second launch got %v, first %v", second.IDs(), first.IDs())
	}
	if live := f.states(testRun); live["running"] != len(first.Instances) {
		t.Errorf("%v instances after two launches, want %d", live, len(first.Instances))
	}
	if len(f.templates) != 1 {
		t.Errorf("%d templates", len(f.templates))
	}
	// A new attempt is a new launch.
	spec.Attempt = 1
	third, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(third.IDs(), func(id string) bool { return slices.Contains(first.IDs(), id) }) {
		t.Errorf("attempt 1 replayed attempt 0's instances")
	}
}

func TestLaunchReusesExistingTemplate(t *testing.T) {
	f := newLaunchFake(testOffers())
	f.templates[TemplateName(testRun)] = &fakeTemplate{id: "lt-old", token: "someone-else", in: nil}
	spec := testLaunchSpec(t, nil)
	// The existing template is the one the fleet uses: give it data.
	f.templates[TemplateName(testRun)].in = templateInputFor(t, spec)
	l, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatalf("an existing template must be reused: %v", err)
	}
	if len(l.Instances) == 0 || f.templates[TemplateName(testRun)].id != "lt-old" {
		t.Errorf("instances %d, template %s", len(l.Instances), f.templates[TemplateName(testRun)].id)
	}
}

// templateInputFor is the launch template input Launch makes for spec, as
// the fake recorded it.
func templateInputFor(t *testing.T, spec LaunchSpec) *ec2.CreateLaunchTemplateInput {
	t.Helper()
	g := newLaunchFake(spec.Offers)
	if _, err := Launch(context.Background(), g, spec); err != nil {
		t.Fatal(err)
	}
	return g.templates[TemplateName(spec.RunID)].in
}

func TestLaunchBudgetCap(t *testing.T) {
	offers := []Offer{
		{Type: it("c7i.2xlarge", 8), Market: Spot, PerHour: 0.15},
		{Type: it("m7i.2xlarge", 8), Market: Spot, PerHour: 0.30},
		{Type: it("r7i.4xlarge", 16), Market: Spot, PerHour: 0.90},
		{Type: it("c7i.2xlarge", 8), Market: OnDemand, PerHour: 0.357},
	}
	for _, ignore := range []bool{false, true} {
		t.Run("ignore MaxTotalPrice "+strconv.FormatBool(ignore), func(t *testing.T) {
			f := newLaunchFake(offers)
			f.ignoreMaxTotalPrice = ignore
			// The planned type is out: substitutes cost twice and more.
			f.capErr[fakePool(Spot, "c7i.2xlarge")] = "InsufficientInstanceCapacity"
			spec := testLaunchSpec(t, nil)
			spec.Offers = offers
			spec.TargetVCPUs = 32
			spec.MaxPerHour = 0.75 // the plan: 4 x 0.15 = 0.60, with some room
			l, err := Launch(context.Background(), f, spec)
			if err != nil {
				t.Fatal(err)
			}
			checkLaunched(t, f, spec, l)
			if l.PerHour > spec.MaxPerHour || l.Shortfall == 0 || len(l.Instances) == 0 {
				t.Errorf("%.4f $/h for %d vCPUs; want at most %.2f, short", l.PerHour, l.VCPUs, spec.MaxPerHour)
			}
			for _, in := range f.fleetInputs {
				for _, ov := range in.LaunchTemplateConfigs[0].Overrides {
					if ov.InstanceType == "r7i.4xlarge" {
						t.Error("requested a type that alone costs more than the budget")
					}
				}
				var p string
				if in.SpotOptions != nil {
					p = aws.ToString(in.SpotOptions.MaxTotalPrice)
				} else {
					p = aws.ToString(in.OnDemandOptions.MaxTotalPrice)
				}
				if v, err := strconv.ParseFloat(p, 64); err != nil || v > spec.MaxPerHour {
					t.Errorf("MaxTotalPrice %q over the cap", p)
				}
			}
			if ignore && len(f.terminated) == 0 {
				t.Error("the surplus EC2 launched past MaxTotalPrice was not terminated")
			}
		})
	}
}

func TestLaunchRejectsBadSpecs(t *testing.T) {
	for name, mod := range map[string]func(*LaunchSpec){
		"run id":      func(s *LaunchSpec) { s.RunID = "a/b" },
		"owner":       func(s *LaunchSpec) { s.Owner = "" },
		"expired":     func(s *LaunchSpec) { s.Expires = time.Now().Add(-time.Minute) },
		"no expiry":   func(s *LaunchSpec) { s.Expires = time.Time{} },
		"ami":         func(s *LaunchSpec) { s.AMI = "" },
		"profile":     func(s *LaunchSpec) { s.InstanceProfile = "" },
		"user data":   func(s *LaunchSpec) { s.UserData = strings.Repeat("x", MaxUserData+1) },
		"target":      func(s *LaunchSpec) { s.TargetVCPUs = 0 },
		"budget":      func(s *LaunchSpec) { s.MaxPerHour = 0 },
		"markets":     func(s *LaunchSpec) { s.AllowSpot, s.AllowOnDemand = false, false },
		"offers":      func(s *LaunchSpec) { s.Offers = nil },
		"offer price": func(s *LaunchSpec) { s.Offers = []Offer{{Type: it("c7i.large", 2), Market: Spot}} },
		"only od offers, spot only": func(s *LaunchSpec) {
			s.AllowOnDemand = false
			s.Offers = testOffers()[3:]
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newLaunchFake(testOffers())
			spec := testLaunchSpec(t, nil)
			mod(&spec)
			if _, err := Launch(context.Background(), f, spec); err == nil {
				t.Error("accepted")
			}
			if len(f.calls) != 0 {
				t.Errorf("calls %v before validating", f.calls)
			}
		})
	}
}

func TestLaunchProfileARN(t *testing.T) {
	f := newLaunchFake(testOffers())
	spec := testLaunchSpec(t, nil)
	spec.InstanceProfile = "arn:aws:iam::123456789012:instance-profile/burst-worker"
	if _, err := Launch(context.Background(), f, spec); err != nil {
		t.Fatal(err)
	}
	p := f.templates[TemplateName(testRun)].in.LaunchTemplateData.IamInstanceProfile
	if aws.ToString(p.Arn) != spec.InstanceProfile || p.Name != nil {
		t.Errorf("profile %+v", p)
	}
}

// With SpotCap, every spot override carries a maximum price of its offer's
// price plus the cap, and the fleet is counted at those maxima against
// MaxPerHour: however spot prices rise, the fleet costs no more than that.
func TestLaunchSpotCap(t *testing.T) {
	f := newLaunchFake(testOffers())
	spec := testLaunchSpec(t, nil)
	spec.SpotCap = 0.1
	spec.AllowOnDemand = false
	spec.MaxPerHour = 4 * 0.15 * 1.1 // four c7i.2xlarge at their cap
	l, err := Launch(context.Background(), f, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range f.fleetInputs {
		for _, ov := range in.LaunchTemplateConfigs[0].Overrides {
			var offer float64
			for _, o := range testOffers() {
				if o.Market == Spot && o.Type.Name == string(ov.InstanceType) {
					offer = o.PerHour
				}
			}
			if want := priceString(offer * 1.1); aws.ToString(ov.MaxPrice) != want {
				t.Errorf("%s: MaxPrice %q, want %s", ov.InstanceType, aws.ToString(ov.MaxPrice), want)
			}
		}
	}
	capped := 0.0
	for _, in := range l.Instances {
		capped += in.PerHour
	}
	if capped > spec.MaxPerHour+1e-9 || l.PerHour > spec.MaxPerHour+1e-9 {
		t.Errorf("the fleet at its caps costs %.4f $/h, over %.4f", capped, spec.MaxPerHour)
	}
	if l.VCPUs != 32 {
		t.Errorf("launched %d vCPUs, want 32", l.VCPUs)
	}
}
