package provision

// Launch, Down and GC against moto's server, a real EC2 API emulator
// (internal/testmoto). moto does not apply a launch template's instance
// profile, metadata options or shutdown behaviour to a fleet's instances
// (internal/testmoto pins that down), so those are checked on the launch
// template, as EC2 stores it.

import (
	"context"
	"encoding/base64"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/internal/testmoto"
)

func motoSetup(t *testing.T) (context.Context, *ec2.Client) {
	t.Helper()
	srv := testmoto.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx, srv.Client(t)
}

// motoSpec is a launch spec on moto's default VPC: its first two subnets,
// one of its public images, types moto knows.
func motoSpec(ctx context.Context, t *testing.T, c *ec2.Client, run string, expires time.Time) LaunchSpec {
	t.Helper()
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("DescribeImages: %v", err)
	}
	subs, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subs.Subnets) < 2 {
		t.Fatalf("DescribeSubnets: %v", err)
	}
	sort.Slice(subs.Subnets, func(i, j int) bool {
		return aws.ToString(subs.Subnets[i].AvailabilityZone) < aws.ToString(subs.Subnets[j].AvailabilityZone)
	})
	ud, err := UserData(UserDataSpec{Run: "s3://my-bucket/burst/runs/" + run, Region: testmoto.Region, Deadline: expires})
	if err != nil {
		t.Fatal(err)
	}
	return LaunchSpec{
		RunID:           run,
		Owner:           "ana",
		Expires:         expires,
		AMI:             aws.ToString(imgs.Images[0].ImageId),
		InstanceProfile: "burst-worker",
		SubnetIDs:       []string{aws.ToString(subs.Subnets[0].SubnetId), aws.ToString(subs.Subnets[1].SubnetId)},
		UserData:        ud,
		Offers: []Offer{
			{Type: it("c5.xlarge", 4), Market: Spot, PerHour: 0.07},
			{Type: it("m5.2xlarge", 8), Market: Spot, PerHour: 0.15},
			{Type: it("c5.xlarge", 4), Market: OnDemand, PerHour: 0.17},
		},
		TargetVCPUs:   16,
		MaxPerHour:    1,
		AllowSpot:     true,
		AllowOnDemand: true,
		Logger:        quietLog(t),
	}
}

func motoLive(ctx context.Context, t *testing.T, c *ec2.Client, filters ...types.Filter) []types.Instance {
	t.Helper()
	in := &ec2.DescribeInstancesInput{Filters: append(filters, types.Filter{Name: aws.String("instance-state-name"), Values: liveStates})}
	var all []types.Instance
	p := ec2.NewDescribeInstancesPaginator(c, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeInstances: %v", err)
		}
		for _, r := range out.Reservations {
			all = append(all, r.Instances...)
		}
	}
	return all
}

func byRunFilter(run string) types.Filter {
	return types.Filter{Name: aws.String("tag:" + TagRun), Values: []string{run}}
}

func TestMotoLaunchAndDown(t *testing.T) {
	ctx, c := motoSetup(t)
	expires := time.Now().Add(2 * time.Hour).Truncate(time.Second).UTC()
	spec := motoSpec(ctx, t, c, "moto-run-1", expires)
	l, err := Launch(ctx, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("launched %d instances, %d vCPUs, %.2f $/h, notes %q", len(l.Instances), l.VCPUs, l.PerHour, l.Notes)
	if l.VCPUs < spec.TargetVCPUs || l.Shortfall != 0 || l.PerHour > spec.MaxPerHour {
		t.Errorf("launched %d vCPUs at %.2f $/h", l.VCPUs, l.PerHour)
	}
	wantTags := map[string]string{TagRun: spec.RunID, TagOwner: "ana", TagExpires: expires.Format(time.RFC3339), "Name": TemplateName(spec.RunID)}

	// The launch template, as EC2 stores it.
	lts, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{TemplateName(spec.RunID)}})
	if err != nil || len(lts.LaunchTemplates) != 1 {
		t.Fatalf("DescribeLaunchTemplates: %v", err)
	}
	if got := tagsOf(lts.LaunchTemplates[0].Tags); !hasAll(got, wantTags) {
		t.Errorf("launch template tags %v", got)
	}
	vers, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateName: aws.String(TemplateName(spec.RunID)), Versions: []string{"$Default"},
	})
	if err != nil || len(vers.LaunchTemplateVersions) != 1 {
		t.Fatalf("DescribeLaunchTemplateVersions: %v", err)
	}
	d := vers.LaunchTemplateVersions[0].LaunchTemplateData
	if m := d.MetadataOptions; m == nil || m.HttpTokens != types.LaunchTemplateHttpTokensStateRequired || aws.ToInt32(m.HttpPutResponseHopLimit) != 1 {
		t.Errorf("template metadata options %+v: want IMDSv2 required, hop limit 1", d.MetadataOptions)
	}
	if d.InstanceInitiatedShutdownBehavior != types.ShutdownBehaviorTerminate {
		t.Errorf("template shutdown behaviour %q, want terminate", d.InstanceInitiatedShutdownBehavior)
	}
	if d.IamInstanceProfile == nil || aws.ToString(d.IamInstanceProfile.Name) != "burst-worker" {
		t.Errorf("template instance profile %+v", d.IamInstanceProfile)
	}
	tagged := map[types.ResourceType]bool{}
	for _, ts := range d.TagSpecifications {
		if hasAll(tagsOf(ts.Tags), wantTags) {
			tagged[ts.ResourceType] = true
		}
	}
	if !tagged[types.ResourceTypeInstance] || !tagged[types.ResourceTypeVolume] {
		t.Errorf("template tag specifications %+v: want instance and volume with the run's tags", d.TagSpecifications)
	}

	// The instances.
	insts := motoLive(ctx, t, c, byRunFilter(spec.RunID))
	var got []string
	for _, in := range insts {
		got = append(got, aws.ToString(in.InstanceId))
		if tags := tagsOf(in.Tags); !hasAll(tags, wantTags) {
			t.Errorf("%s tags %v", aws.ToString(in.InstanceId), tags)
		}
		attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: in.InstanceId, Attribute: types.InstanceAttributeNameUserData})
		if err != nil {
			t.Fatal(err)
		}
		if ud, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value)); err != nil || string(ud) != spec.UserData {
			t.Errorf("%s user data is not the boot script (%v)", aws.ToString(in.InstanceId), err)
		}
	}
	if !sameSet(got, l.IDs()) {
		t.Errorf("EC2 has %v live for the run, Launch listed %v", got, l.IDs())
	}
	for _, in := range l.Instances {
		if in.Market != Spot || in.Type != "c5.xlarge" || in.AZ == "" || in.LaunchTime.IsZero() || in.State != "running" || in.PerHour != 0.07 {
			t.Errorf("listed %+v", in)
		}
	}
	vols, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: l.IDs()}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols.Volumes {
		if !hasAll(tagsOf(v.Tags), wantTags) {
			t.Errorf("volume %s tags %v", aws.ToString(v.VolumeId), tagsOf(v.Tags))
		}
	}

	// A relaunch of the run (a new attempt) reuses the template.
	spec.Attempt = 1
	spec.TargetVCPUs = 4
	l2, err := Launch(ctx, c, spec)
	if err != nil {
		t.Fatalf("relaunch: %v", err)
	}
	if len(l2.Instances) != 1 {
		t.Errorf("relaunch got %d instances, want 1", len(l2.Instances))
	}

	// Down ends them all and deletes the template; twice is fine.
	other := motoSpec(ctx, t, c, "moto-run-2", expires)
	other.TargetVCPUs = 4
	if _, err := Launch(ctx, c, other); err != nil {
		t.Fatal(err)
	}
	var progress []TeardownProgress
	res, err := Down(ctx, c, spec.RunID, DownOptions{Poll: 50 * time.Millisecond, Logger: quietLog(t), Progress: func(p TeardownProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Instances) != len(l.Instances)+1 || !res.TemplateDeleted {
		t.Errorf("Down: %d instances, template deleted %v", len(res.Instances), res.TemplateDeleted)
	}
	if n := len(motoLive(ctx, t, c, byRunFilter(spec.RunID))); n != 0 {
		t.Errorf("%d instances of the run not terminated after Down", n)
	}
	if last := progress[len(progress)-1]; last.Terminated != last.Total {
		t.Errorf("progress %+v", progress)
	}
	if _, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{TemplateName(spec.RunID)}}); err == nil {
		t.Error("the run's launch template is still there")
	}
	if n := len(motoLive(ctx, t, c, byRunFilter(other.RunID))); n != 1 {
		t.Errorf("the other run has %d live instances after Down of the first, want 1", n)
	}
	res, err = Down(ctx, c, spec.RunID, DownOptions{Poll: 50 * time.Millisecond, Logger: quietLog(t)})
	if err != nil || len(res.Instances) != 0 || res.TemplateDeleted {
		t.Errorf("second Down: %+v, %v", res, err)
	}
}

func TestMotoGC(t *testing.T) {
	ctx, c := motoSetup(t)
	now := time.Now().Truncate(time.Second).UTC()
	soon := motoSpec(ctx, t, c, "gc-soon", now.Add(time.Hour))
	later := motoSpec(ctx, t, c, "gc-later", now.Add(3*time.Hour))
	ended := motoSpec(ctx, t, c, "gc-ended", now.Add(3*time.Hour))
	var soonIDs, endedIDs []string
	for _, s := range []*LaunchSpec{&soon, &later, &ended} {
		s.TargetVCPUs = 8
		l, err := Launch(ctx, c, *s)
		if err != nil {
			t.Fatal(err)
		}
		switch s.RunID {
		case "gc-soon":
			soonIDs = l.IDs()
		case "gc-ended":
			endedIDs = l.IDs()
		}
	}
	// An instance tagged with a run but no expiry, as by hand.
	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(soon.AMI), InstanceType: types.InstanceTypeC5Large, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
			{Key: aws.String(TagRun), Value: aws.String("by-hand")},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	byHand := aws.ToString(run.Instances[0].InstanceId)
	// And one that is not burst's at all.
	if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(soon.AMI), InstanceType: types.InstanceTypeC5Large, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
	}); err != nil {
		t.Fatal(err)
	}

	opts := GCOptions{
		Now:    now.Add(2 * time.Hour),
		Ended:  func(_ context.Context, run string) (bool, error) { return run == "gc-ended", nil },
		Poll:   50 * time.Millisecond,
		Logger: quietLog(t),
	}
	dry := opts
	dry.DryRun = true
	res, err := GC(ctx, c, dry)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(soonIDs), endedIDs...)
	if !sameSet(gcIDs(res.Reaped), want) || !slices.Equal(gcIDs(res.Kept), []string{byHand}) {
		t.Errorf("dry run: reaps %v (want %v), keeps %v (want %s)", gcIDs(res.Reaped), want, gcIDs(res.Kept), byHand)
	}
	// 2 instances (of 4 vCPUs) for each of 3 runs, and 2 more.
	if n := len(motoLive(ctx, t, c)); n != 8 {
		t.Errorf("%d live instances after a dry run, want all 8", n)
	}

	res, err = GC(ctx, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(gcIDs(res.Reaped), want) || !sameSet(res.Templates, []string{TemplateName("gc-soon"), TemplateName("gc-ended")}) {
		t.Errorf("GC reaped %v, deleted templates %v", gcIDs(res.Reaped), res.Templates)
	}
	for _, r := range []string{"gc-soon", "gc-ended"} {
		if n := len(motoLive(ctx, t, c, byRunFilter(r))); n != 0 {
			t.Errorf("run %s has %d live instances after GC", r, n)
		}
	}
	if n := len(motoLive(ctx, t, c)); n != 4 {
		t.Errorf("%d live instances after GC, want 4 (gc-later's 2, by hand, not burst's)", n)
	}
	res, err = GC(ctx, c, opts)
	if err != nil || len(res.Reaped) != 0 {
		t.Errorf("second GC: %+v, %v", res, err)
	}
}

func tagsOf(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// TestMotoBudgetCap: moto ignores MaxTotalPrice and launches the whole
// target; Launch terminates the surplus, so the fleet stays within the cap.
func TestMotoBudgetCap(t *testing.T) {
	ctx, c := motoSetup(t)
	spec := motoSpec(ctx, t, c, "capped", time.Now().Add(time.Hour))
	spec.MaxPerHour = 0.1 // one c5.xlarge spot at 0.07, not two
	l, err := Launch(ctx, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("notes %q", l.Notes)
	if len(l.Instances) != 1 || l.PerHour > spec.MaxPerHour || l.Shortfall != 12 {
		t.Errorf("%d instances, %.2f $/h, shortfall %d; want 1, within 0.10, 12", len(l.Instances), l.PerHour, l.Shortfall)
	}
	live := motoLive(ctx, t, c, byRunFilter(spec.RunID))
	if len(live) != 1 || aws.ToString(live[0].InstanceId) != l.Instances[0].ID {
		t.Errorf("EC2 has %d live instances of the run, want only %s", len(live), l.Instances[0].ID)
	}
}
