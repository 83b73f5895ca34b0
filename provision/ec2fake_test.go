package provision

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// fleetFake is a stateful EC2API for the launch and teardown tests. It
// keeps instances (with states and tags) and launch templates, launches
// instant fleets from per-pool capacity, honours MaxTotalPrice and vCPU
// quotas, replays a fleet answer for a repeated ClientToken (as EC2 does),
// and can inject capacity errors, throttling and any API error. A
// terminated instance goes through shutting-down for termDescribes
// DescribeInstances calls.
type fleetFake struct {
	mu sync.Mutex

	instances []*fakeInstance
	templates map[string]*fakeTemplate
	fleets    map[string]*ec2.CreateFleetOutput // by ClientToken

	// capacity is how many more instances a pool (market|type) has;
	// a pool not listed has no limit.
	capacity map[string]int
	// capErr is the error code a pool (market|type) answers instead of
	// launching.
	capErr map[string]string
	// quota is the most vCPUs running on a market; none when absent.
	quota map[Market]int
	// prices are the pools' prices (market|type), to honour MaxTotalPrice.
	prices map[string]float64
	// ignoreMaxTotalPrice launches past MaxTotalPrice.
	ignoreMaxTotalPrice bool
	// vcpus of each type.
	vcpus map[string]int
	// throttle makes the first N calls of a method fail with
	// RequestLimitExceeded.
	throttle map[string]int
	// fail holds API errors to return, in order, per method.
	fail map[string][]error
	// termDescribes is how many DescribeInstances calls a terminating
	// instance stays shutting-down for.
	termDescribes int
	// forget holds ids that DescribeInstances lists until a
	// TerminateInstances names them: that answers that they do not exist,
	// and they vanish (an instance EC2 dropped meanwhile).
	forget map[string]bool
	// hidden holds ids that tag searches miss for that many more
	// DescribeInstances calls (EC2's eventual consistency after a
	// launch).
	hidden map[string]int
	// pageSize of DescribeInstances answers.
	pageSize int

	// now is the fake's clock (time.Now when nil): launch times, and
	// the instances' own deadlines.
	now func() time.Time
	// flaky, when set, is asked before every call and may fail it.
	flaky func(method string) error
	// dead, when set, fails every call: a CLI that was killed makes no
	// more.
	dead bool

	calls        map[string]int
	fleetInputs  []*ec2.CreateFleetInput
	fleetOutputs []*ec2.CreateFleetOutput // nil for a failed call
	terminated   [][]string
	seq          int
}

type fakeInstance struct {
	id, typ, subnet, az string
	market              Market
	state               string
	tags                map[string]string
	launched            time.Time
	describesLeft       int
	userData            string
	// ended is when the instance stopped being billed; deadline is the
	// hard deadline its user data holds; maxPrice is its spot cap.
	ended    time.Time
	deadline time.Time
	maxPrice float64
}

type fakeTemplate struct {
	id, token string
	in        *ec2.CreateLaunchTemplateInput
}

func newFleetFake() *fleetFake {
	return &fleetFake{
		templates: map[string]*fakeTemplate{},
		fleets:    map[string]*ec2.CreateFleetOutput{},
		capacity:  map[string]int{},
		capErr:    map[string]string{},
		quota:     map[Market]int{},
		prices:    map[string]float64{},
		vcpus:     map[string]int{},
		throttle:  map[string]int{},
		fail:      map[string][]error{},
		forget:    map[string]bool{},
		hidden:    map[string]int{},
		calls:     map[string]int{},
		pageSize:  3,
	}
}

func fakeAPIErr(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }

func fakePool(m Market, typ string) string { return string(m) + "|" + typ }

func (f *fleetFake) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// expire ends the instances whose user data's deadline has passed, as
// their own scheduled shutdown would.
func (f *fleetFake) expire() {
	now := f.clock()
	for _, i := range f.instances {
		if i.state != "terminated" && !i.deadline.IsZero() && !now.Before(i.deadline) {
			i.state, i.ended = "terminated", i.deadline
		}
	}
}

// end terminates an instance now, without notice to anyone (a crash, a
// spot interruption).
func (f *fleetFake) end(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.find(id); i != nil && i.state != "terminated" {
		i.state, i.ended = "terminated", f.clock()
	}
}

// spend is what the instances cost, as EC2 bills: per second from launch
// to their end (or now, or their deadline), at least a minute, spot ones
// at their cap (the worst a rising price can do) and others at their
// pool's price. It also returns the most one billing minute of every
// instance adds.
func (f *fleetFake) spend() (total, minutes float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	now := f.clock()
	for _, i := range f.instances {
		price := f.prices[fakePool(i.market, i.typ)]
		if i.maxPrice > 0 {
			price = i.maxPrice
		}
		end := i.ended
		if end.IsZero() {
			end = now
		}
		total += price * max(end.Sub(i.launched), time.Minute).Hours()
		minutes += price / 60
	}
	return total, minutes
}

// live returns the ids of the instances not terminated, of run.
func (f *fleetFake) live(run string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	var ids []string
	for _, i := range f.instances {
		if i.state != "terminated" && i.tags[TagRun] == run {
			ids = append(ids, i.id)
		}
	}
	return ids
}

// enter counts a call and returns its injected error, if any.
func (f *fleetFake) enter(method string) error {
	f.expire()
	if f.dead {
		return fmt.Errorf("fleetFake: the caller is dead")
	}
	if f.flaky != nil {
		if err := f.flaky(method); err != nil {
			return err
		}
	}
	f.calls[method]++
	if f.throttle[method] > 0 {
		f.throttle[method]--
		return fakeAPIErr("RequestLimitExceeded", "Request limit exceeded.")
	}
	if errs := f.fail[method]; len(errs) > 0 {
		f.fail[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *fleetFake) DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	return nil, fmt.Errorf("fleetFake: DescribeInstanceTypes not emulated")
}

func (f *fleetFake) DescribeSpotPriceHistory(context.Context, *ec2.DescribeSpotPriceHistoryInput, ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error) {
	return nil, fmt.Errorf("fleetFake: DescribeSpotPriceHistory not emulated")
}

func (f *fleetFake) DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	return nil, fmt.Errorf("fleetFake: DescribeImages not emulated")
}

func (f *fleetFake) CreateLaunchTemplate(ctx context.Context, in *ec2.CreateLaunchTemplateInput, _ ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateLaunchTemplate"); err != nil {
		return nil, err
	}
	name := aws.ToString(in.LaunchTemplateName)
	if t, ok := f.templates[name]; ok {
		if t.token != "" && t.token == aws.ToString(in.ClientToken) {
			return &ec2.CreateLaunchTemplateOutput{LaunchTemplate: &types.LaunchTemplate{LaunchTemplateId: aws.String(t.id), LaunchTemplateName: aws.String(name)}}, nil
		}
		return nil, fakeAPIErr("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	f.seq++
	t := &fakeTemplate{id: fmt.Sprintf("lt-%017d", f.seq), token: aws.ToString(in.ClientToken), in: in}
	f.templates[name] = t
	return &ec2.CreateLaunchTemplateOutput{LaunchTemplate: &types.LaunchTemplate{LaunchTemplateId: aws.String(t.id), LaunchTemplateName: aws.String(name)}}, nil
}

func (f *fleetFake) DeleteLaunchTemplate(ctx context.Context, in *ec2.DeleteLaunchTemplateInput, _ ...func(*ec2.Options)) (*ec2.DeleteLaunchTemplateOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DeleteLaunchTemplate"); err != nil {
		return nil, err
	}
	name := aws.ToString(in.LaunchTemplateName)
	if _, ok := f.templates[name]; !ok {
		return nil, fakeAPIErr("InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist.")
	}
	delete(f.templates, name)
	return &ec2.DeleteLaunchTemplateOutput{}, nil
}

// running is the vCPUs not terminated on market m.
func (f *fleetFake) running(m Market) int {
	n := 0
	for _, in := range f.instances {
		if in.market == m && in.state != "terminated" {
			n += f.vcpus[in.typ]
		}
	}
	return n
}

func (f *fleetFake) CreateFleet(ctx context.Context, in *ec2.CreateFleetInput, _ ...func(*ec2.Options)) (*ec2.CreateFleetOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("CreateFleet"); err != nil {
		return nil, err
	}
	f.fleetInputs = append(f.fleetInputs, in)
	f.fleetOutputs = append(f.fleetOutputs, nil)
	token := aws.ToString(in.ClientToken)
	if out, ok := f.fleets[token]; ok && token != "" {
		f.fleetOutputs[len(f.fleetOutputs)-1] = out
		return out, nil
	}
	if in.Type != types.FleetTypeInstant || len(in.LaunchTemplateConfigs) != 1 || in.TargetCapacitySpecification == nil {
		return nil, fakeAPIErr("InvalidParameterValue", "fleetFake emulates one-template instant fleets")
	}
	cfg := in.LaunchTemplateConfigs[0]
	tpl, ok := f.templates[aws.ToString(cfg.LaunchTemplateSpecification.LaunchTemplateName)]
	if !ok {
		return nil, fakeAPIErr("InvalidLaunchTemplateName.NotFoundException", "no such launch template")
	}
	market, maxTotal := OnDemand, ""
	if in.TargetCapacitySpecification.DefaultTargetCapacityType == types.DefaultTargetCapacityTypeSpot {
		market = Spot
		if in.SpotOptions != nil {
			maxTotal = aws.ToString(in.SpotOptions.MaxTotalPrice)
		}
	} else if in.OnDemandOptions != nil {
		maxTotal = aws.ToString(in.OnDemandOptions.MaxTotalPrice)
	}
	limit := -1.0
	if maxTotal != "" {
		var err error
		if limit, err = strconv.ParseFloat(maxTotal, 64); err != nil {
			return nil, fakeAPIErr("InvalidParameterValue", "MaxTotalPrice "+maxTotal)
		}
	}
	target := float64(aws.ToInt32(in.TargetCapacitySpecification.TotalTargetCapacity))
	// Pools in the order the fleet uses them: spot by price per unit,
	// on-demand by priority.
	ovs := slices.Clone(cfg.Overrides)
	sort.SliceStable(ovs, func(i, j int) bool {
		if market == Spot {
			pi := f.prices[fakePool(market, string(ovs[i].InstanceType))] / aws.ToFloat64(ovs[i].WeightedCapacity)
			pj := f.prices[fakePool(market, string(ovs[j].InstanceType))] / aws.ToFloat64(ovs[j].WeightedCapacity)
			return pi < pj
		}
		return aws.ToFloat64(ovs[i].Priority) < aws.ToFloat64(ovs[j].Priority)
	})
	out := &ec2.CreateFleetOutput{FleetId: aws.String(fmt.Sprintf("fleet-%d", len(f.fleets)+1))}
	tags := map[string]string{}
	if tpl.in.LaunchTemplateData != nil {
		for _, ts := range tpl.in.LaunchTemplateData.TagSpecifications {
			if ts.ResourceType == types.ResourceTypeInstance {
				for _, t := range ts.Tags {
					tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
				}
			}
		}
	}
	for _, ts := range in.TagSpecifications {
		if ts.ResourceType == types.ResourceTypeInstance {
			for _, t := range ts.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		}
	}
	lifecycle := types.InstanceLifecycleOnDemand
	if market == Spot {
		lifecycle = types.InstanceLifecycleSpot
	}
	spent, got := 0.0, 0.0
	errored := map[string]bool{}
	addErr := func(ov types.FleetLaunchTemplateOverridesRequest, code string) {
		out.Errors = append(out.Errors, types.CreateFleetError{
			ErrorCode:    aws.String(code),
			ErrorMessage: aws.String(code + " (fleetFake)"),
			Lifecycle:    lifecycle,
			LaunchTemplateAndOverrides: &types.LaunchTemplateAndOverridesResponse{Overrides: &types.FleetLaunchTemplateOverrides{
				InstanceType: ov.InstanceType, SubnetId: ov.SubnetId, WeightedCapacity: ov.WeightedCapacity,
			}},
		})
	}
	byPool := map[string]*types.CreateFleetInstance{}
launch:
	for _, ov := range ovs {
		typ := string(ov.InstanceType)
		key := fakePool(market, typ)
		if code, ok := f.capErr[key]; ok {
			if !errored[key+"|"+aws.ToString(ov.SubnetId)] {
				errored[key+"|"+aws.ToString(ov.SubnetId)] = true
				addErr(ov, code)
			}
			continue
		}
		for got < target {
			if c, ok := f.capacity[key]; ok && c <= 0 {
				addErr(ov, "InsufficientInstanceCapacity")
				break
			}
			price := f.prices[key]
			if limit >= 0 && !f.ignoreMaxTotalPrice && spent+price > limit+1e-9 {
				break launch
			}
			if q, ok := f.quota[market]; ok && f.running(market)+f.vcpus[typ] > q {
				code := "VcpuLimitExceeded"
				if market == Spot {
					code = "MaxSpotInstanceCountExceeded"
				}
				addErr(ov, code)
				break launch
			}
			if _, ok := f.capacity[key]; ok {
				f.capacity[key]--
			}
			f.seq++
			subnet := aws.ToString(ov.SubnetId)
			inst := &fakeInstance{
				id: fmt.Sprintf("i-%017x", f.seq), typ: typ, subnet: subnet, az: "az-of-" + subnet,
				market: market, state: "pending", tags: cloneTags(tags), launched: f.clock().UTC(),
				userData: aws.ToString(tpl.in.LaunchTemplateData.UserData),
			}
			inst.deadline = userDataDeadline(inst.userData)
			if mp, err := strconv.ParseFloat(aws.ToString(ov.MaxPrice), 64); err == nil {
				inst.maxPrice = mp
			}
			f.instances = append(f.instances, inst)
			spent += price
			got += aws.ToFloat64(ov.WeightedCapacity)
			pool := typ + "|" + subnet
			if byPool[pool] == nil {
				byPool[pool] = &types.CreateFleetInstance{
					InstanceType: ov.InstanceType, Lifecycle: lifecycle,
					LaunchTemplateAndOverrides: &types.LaunchTemplateAndOverridesResponse{Overrides: &types.FleetLaunchTemplateOverrides{
						InstanceType: ov.InstanceType, SubnetId: ov.SubnetId, WeightedCapacity: ov.WeightedCapacity,
					}},
				}
			}
			byPool[pool].InstanceIds = append(byPool[pool].InstanceIds, inst.id)
		}
		if got >= target {
			break
		}
	}
	pools := make([]string, 0, len(byPool))
	for p := range byPool {
		pools = append(pools, p)
	}
	sort.Strings(pools)
	for _, p := range pools {
		out.Instances = append(out.Instances, *byPool[p])
	}
	if token != "" {
		f.fleets[token] = out
	}
	f.fleetOutputs[len(f.fleetOutputs)-1] = out
	return out, nil
}

func cloneTags(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (f *fleetFake) matches(in *fakeInstance, filters []types.Filter) bool {
	for _, fl := range filters {
		name := aws.ToString(fl.Name)
		var have string
		var ok bool
		switch {
		case name == "instance-state-name":
			have, ok = in.state, true
		case name == "instance-id":
			have, ok = in.id, true
		case name == "tag-key":
			_, has := in.tags[fl.Values[0]]
			if !has {
				return false
			}
			continue
		case strings.HasPrefix(name, "tag:"):
			if f.hidden[in.id] > 0 {
				return false
			}
			have, ok = in.tags[strings.TrimPrefix(name, "tag:")]
		default:
			panic("fleetFake: filter " + name + " not emulated")
		}
		if !ok || !slices.Contains(fl.Values, have) {
			return false
		}
	}
	return true
}

func (f *fleetFake) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("DescribeInstances"); err != nil {
		return nil, err
	}
	if len(in.InstanceIds) > 0 {
		return nil, fakeAPIErr("InvalidParameterCombination", "fleetFake: describe by filter")
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	} else {
		// Time passes between listings: pending instances run, and
		// terminating ones get closer to terminated.
		for id, n := range f.hidden {
			f.hidden[id] = n - 1
		}
		for _, i := range f.instances {
			switch i.state {
			case "pending":
				i.state = "running"
			case "shutting-down":
				if i.describesLeft--; i.describesLeft <= 0 {
					i.state = "terminated"
				}
			}
		}
	}
	var all []*fakeInstance
	for _, i := range f.instances {
		if f.matches(i, in.Filters) {
			all = append(all, i)
		}
	}
	out := &ec2.DescribeInstancesOutput{}
	end := min(start+f.pageSize, len(all))
	for _, i := range all[start:end] {
		inst := types.Instance{
			InstanceId:   aws.String(i.id),
			InstanceType: types.InstanceType(i.typ),
			State:        &types.InstanceState{Name: types.InstanceStateName(i.state)},
			Placement:    &types.Placement{AvailabilityZone: aws.String(i.az)},
			LaunchTime:   aws.Time(i.launched),
			SubnetId:     aws.String(i.subnet),
		}
		if i.market == Spot {
			inst.InstanceLifecycle = types.InstanceLifecycleTypeSpot
		}
		keys := make([]string, 0, len(i.tags))
		for k := range i.tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			inst.Tags = append(inst.Tags, types.Tag{Key: aws.String(k), Value: aws.String(i.tags[k])})
		}
		out.Reservations = append(out.Reservations, types.Reservation{Instances: []types.Instance{inst}})
	}
	if end < len(all) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func (f *fleetFake) find(id string) *fakeInstance {
	for _, i := range f.instances {
		if i.id == id {
			return i
		}
	}
	return nil
}

func (f *fleetFake) TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("TerminateInstances"); err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range in.InstanceIds {
		if f.find(id) == nil || f.forget[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		f.instances = slices.DeleteFunc(f.instances, func(i *fakeInstance) bool { return f.forget[i.id] })
		// As EC2: one unknown id fails the whole call.
		return nil, fakeAPIErr("InvalidInstanceID.NotFound", fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", ")))
	}
	f.terminated = append(f.terminated, slices.Clone(in.InstanceIds))
	out := &ec2.TerminateInstancesOutput{}
	for _, id := range in.InstanceIds {
		i := f.find(id)
		prev := i.state
		if i.ended.IsZero() {
			i.ended = f.clock()
		}
		if i.state != "terminated" && i.state != "shutting-down" {
			i.state = "shutting-down"
			i.describesLeft = f.termDescribes
			if f.termDescribes == 0 {
				i.state = "terminated"
			}
		}
		out.TerminatingInstances = append(out.TerminatingInstances, types.InstanceStateChange{
			InstanceId:    aws.String(id),
			PreviousState: &types.InstanceState{Name: types.InstanceStateName(prev)},
			CurrentState:  &types.InstanceState{Name: types.InstanceStateName(i.state)},
		})
	}
	return out, nil
}

// userDataDeadline reads the hard deadline from a base64 boot script.
func userDataDeadline(b64 string) time.Time {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return time.Time{}
	}
	_, rest, ok := strings.Cut(string(b), "BURST_BOOT_DEADLINE=")
	if !ok {
		return time.Time{}
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	secs, err := strconv.ParseInt(rest[:max(end, 0)], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(secs, 0)
}

// add puts an instance in the fake directly, as if launched earlier.
func (f *fleetFake) add(typ string, m Market, state string, tags map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("i-%017x", f.seq)
	f.instances = append(f.instances, &fakeInstance{id: id, typ: typ, market: m, state: state, tags: tags, az: "us-east-1a", launched: time.Now().UTC()})
	return id
}

// states counts instances by state, optionally of one run only.
func (f *fleetFake) states(run string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, i := range f.instances {
		if run == "" || i.tags[TagRun] == run {
			n[i.state]++
		}
	}
	return n
}

// userDataOf decodes the user data an instance launched with.
func (f *fleetFake) userDataOf(t *testing.T, id string) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.find(id)
	if i == nil {
		t.Fatalf("no instance %s", id)
	}
	b, err := base64.StdEncoding.DecodeString(i.userData)
	if err != nil {
		t.Fatalf("user data of %s: %v", id, err)
	}
	return string(b)
}

// fastRetry shortens the EC2 retry policy for a test.
func fastRetry(t *testing.T) {
	old := ec2Retry
	ec2Retry = retryPolicy{attempts: 6, base: time.Millisecond, max: 4 * time.Millisecond}
	t.Cleanup(func() { ec2Retry = old })
}
