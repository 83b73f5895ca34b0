package provision

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/slicerburst/burst/staging"
)

// LaunchSpec is a fleet to launch for a run.
//
// Capacity is counted in vCPUs: a worker runs one task per core, so a
// run's slot target is a vCPU target, and any offered type can stand in
// for another with its vCPUs as its weight (EC2 Fleet's
// WeightedCapacity). An instant fleet may overshoot the target by less
// than one instance.
type LaunchSpec struct {
	// RunID is the run (staging.ValidID); it names the launch template
	// (TemplateName) and is the burst:run tag.
	RunID string
	// Owner is the burst:owner tag.
	Owner string
	// Expires is the run's hard deadline, the burst:expires tag. The user
	// data is what makes instances end themselves then.
	Expires time.Time
	// AMI is the image id.
	AMI string
	// InstanceProfile is the workers' instance profile, by name or ARN.
	InstanceProfile string
	// SecurityGroupIDs are the workers' security groups.
	SecurityGroupIDs []string
	// SubnetIDs are where instances may go, ideally one per availability
	// zone, for more capacity pools. Empty: the default VPC.
	SubnetIDs []string
	// UserData is the boot script (see UserData), at most MaxUserData
	// bytes; it is base64-encoded here.
	UserData string

	// Offers are the instance types and markets that may be launched, in
	// order of preference, with their prices. Spot offers are used first
	// (when AllowSpot), then on-demand ones (when AllowOnDemand): a type
	// can only be had on a market for which it has an offer.
	Offers []Offer
	// TargetVCPUs is the capacity to launch, in vCPUs.
	TargetVCPUs int
	// MaxPerHour caps the fleet's spending rate in US dollars per hour,
	// counted at the offers' prices: whatever substitutes are launched,
	// their total never exceeds it.
	MaxPerHour float64
	// Avoid are capacity pools not to use in this launch: a replacement
	// for instances that a spot interruption ended tries other pools
	// first.
	Avoid []Pool
	// SpotCap, when positive, caps each spot instance's price at its
	// offer's price times 1+SpotCap (the request's MaxPrice), and counts
	// the instance at that cap against MaxPerHour: the fleet then stays
	// within MaxPerHour however spot prices move.
	SpotCap float64
	// AllowSpot and AllowOnDemand say which markets may be used.
	AllowSpot, AllowOnDemand bool

	// Attempt tells a new launch for the same run (a relaunch) from a
	// retry of the same launch: calls with the same RunID and Attempt use
	// the same client tokens, so EC2 never launches their instances twice.
	Attempt int
	// Logger receives a line for every decision; slog.Default() when nil.
	Logger *slog.Logger `json:"-"`
}

// counted is the price an offer's instance is counted at against
// MaxPerHour: spot ones at their cap.
func (s *LaunchSpec) counted(o Offer) float64 {
	if o.Market == Spot && s.SpotCap > 0 {
		return o.PerHour * (1 + s.SpotCap)
	}
	return o.PerHour
}

// priceOf is the price an instance of the launch is counted at, and its
// vCPUs; zero when no offer matches it.
func (s *LaunchSpec) priceOf(in Instance) (float64, int) {
	for _, o := range s.Offers {
		if o.Market == in.Market && o.Type.Name == in.Type {
			return s.counted(o), o.Type.VCPUs
		}
	}
	return 0, 0
}

// Pool is an EC2 capacity pool: a type on a market in a subnet ("" for
// any subnet).
type Pool struct {
	Market Market
	Type   string
	Subnet string
}

// Instance is one EC2 instance that burst launched or found.
type Instance struct {
	ID     string
	Type   string
	Market Market
	// PerHour is the price it was launched at (the offer's), in US
	// dollars per hour; zero when unknown (instances found by Down or GC).
	PerHour float64
	// VCPUs is its vCPU count when launched here; zero when unknown.
	VCPUs      int
	LaunchTime time.Time
	// AZ is its availability zone, Subnet its subnet (when known).
	AZ     string
	Subnet string
	// State is EC2's state name (pending, running, shutting-down, ...).
	State string
	// RunID, Owner and Expires are its burst tags (Expires is zero when
	// the tag is missing or unparseable).
	RunID   string
	Owner   string
	Expires time.Time
}

// Launched is what Launch got.
type Launched struct {
	RunID string
	// Template is the name of the run's launch template.
	Template  string
	Instances []Instance
	// TargetVCPUs is what was asked, VCPUs what was launched.
	TargetVCPUs int
	VCPUs       int
	// PerHour is the launched instances' total price per hour.
	PerHour float64
	// Shortfall is the vCPUs asked for and not launched: the run still
	// completes, more slowly.
	Shortfall int
	// Notes say, for people, which errors EC2 answered and what was done
	// about them, and any shortfall.
	Notes []string
	// Limit, when set, is the error that stopped the launch short while
	// some instances had been launched (and kept): a *QuotaError for a
	// quota, so errors.Is(Limit, ErrQuota).
	Limit error
}

// TemplateName is the name of a run's launch template.
func TemplateName(runID string) string { return "burst-" + runID }

// metadataHopLimit is the IMDSv2 response hop limit. The worker runs on
// the instance itself, not in a container, so one hop is all it needs; a
// limit of 1 also keeps the instance role's credentials out of reach of
// anything one network hop further away (a container on a bridge
// network, a forwarded packet).
const metadataHopLimit = 1

// maxOverrides is the most launch template overrides one fleet request
// may carry.
const maxOverrides = 300

// roundsPerMarket bounds the re-requests for missing capacity on one
// market.
const roundsPerMarket = 4

func (s *LaunchSpec) validate() error {
	if err := s.validateShape(); err != nil {
		return err
	}
	if !s.Expires.After(time.Now()) {
		return fmt.Errorf("the run's deadline %s has passed", s.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// validateShape checks the spec, all but whether its deadline has passed.
func (s *LaunchSpec) validateShape() error {
	switch {
	case !staging.ValidID(s.RunID):
		return fmt.Errorf("invalid run id %q", s.RunID)
	case len(TemplateName(s.RunID)) > 128:
		return fmt.Errorf("run id %q is too long to name a launch template", s.RunID)
	case s.Owner == "" || len(s.Owner) > 256:
		return fmt.Errorf("owner %q: must be 1 to 256 characters", s.Owner)
	case s.Expires.IsZero():
		return errors.New("no expiry: every instance must have a deadline")
	case s.AMI == "":
		return errors.New("no AMI")
	case s.InstanceProfile == "":
		return errors.New("no instance profile")
	case s.UserData == "":
		return errors.New("no user data")
	case len(s.UserData) > MaxUserData:
		return fmt.Errorf("user data of %d bytes, over EC2's limit of %d", len(s.UserData), MaxUserData)
	case s.TargetVCPUs < 1 || s.TargetVCPUs > math.MaxInt32:
		return fmt.Errorf("target of %d vCPUs: must be at least 1", s.TargetVCPUs)
	case !(s.MaxPerHour > 0) || math.IsInf(s.MaxPerHour, 0):
		return fmt.Errorf("budget of %v $/h: must be positive", s.MaxPerHour)
	case !s.AllowSpot && !s.AllowOnDemand:
		return errors.New("neither spot nor on-demand allowed")
	case s.SpotCap < 0 || math.IsNaN(s.SpotCap) || math.IsInf(s.SpotCap, 0):
		return fmt.Errorf("spot cap %v: must be 0 or more", s.SpotCap)
	}
	usable := 0
	for _, o := range s.Offers {
		if o.Type.Name == "" || o.Type.VCPUs < 1 || !(o.PerHour > 0) || math.IsInf(o.PerHour, 0) {
			return fmt.Errorf("offer %+v: needs a type name, vCPUs and a price", o)
		}
		switch o.Market {
		case Spot:
			if s.AllowSpot {
				usable++
			}
		case OnDemand:
			if s.AllowOnDemand {
				usable++
			}
		default:
			return fmt.Errorf("offer of %s: unknown market %q", o.Type.Name, o.Market)
		}
	}
	if usable == 0 {
		return errors.New("no offer on an allowed market")
	}
	return nil
}

func (s *LaunchSpec) tags() []types.Tag {
	return []types.Tag{
		{Key: aws.String(TagRun), Value: aws.String(s.RunID)},
		{Key: aws.String(TagOwner), Value: aws.String(s.Owner)},
		{Key: aws.String(TagExpires), Value: aws.String(s.Expires.UTC().Format(time.RFC3339))},
		{Key: aws.String("Name"), Value: aws.String(TemplateName(s.RunID))},
	}
}

// clientToken is a deterministic idempotency token for one request of a
// launch (at most 64 characters, as EC2 requires).
func clientToken(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "burst-" + hex.EncodeToString(h[:16])
}

// Launch launches a fleet for spec.RunID: it creates the run's launch
// template (or reuses it if it exists: a retried launch) and then asks EC2
// for instant fleets until the target is met or nothing more can be had:
//
//   - spot first (price-capacity-optimized over every spot offer and
//     subnet), then on-demand (in the offers' order), within the market's
//     allowance and never above MaxPerHour: the remaining budget is each
//     request's MaxTotalPrice, offers that cost more are left out, and
//     should EC2 launch past it all the same, the surplus is terminated at
//     once;
//   - a capacity error drops that pool (type and subnet) and the missing
//     capacity is asked of the others, then of the next market; the spot
//     instance limit moves on to on-demand;
//   - a quota error stops the launch: with no instance launched Launch
//     returns a *QuotaError (errors.Is(err, ErrQuota)), otherwise it keeps
//     the instances and sets Launched.Limit;
//   - throttling and EC2's transient errors are retried with backoff, with
//     the same client token, so a retried request never launches twice;
//   - any other API error fails the launch.
//
// A fleet short of the target is returned with Shortfall and Notes, and no
// error; one with no instance at all is an error (ErrNoCapacity or
// ErrQuota). Whenever instances were launched the returned *Launched lists
// them, even with an error, so that the caller can end them (or Down the
// run). Calling Launch again with the same spec (same Attempt) is
// idempotent on AWS, which replays fleet requests by client token.
func Launch(ctx context.Context, api EC2API, spec LaunchSpec) (*Launched, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("launching fleet: %w", err)
	}
	log := spec.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("run", spec.RunID)
	l := &launcher{api: api, spec: &spec, log: log, out: &Launched{
		RunID:       spec.RunID,
		Template:    TemplateName(spec.RunID),
		TargetVCPUs: spec.TargetVCPUs,
	}, excluded: map[string]bool{}, seen: map[string]bool{}}
	for _, p := range spec.Avoid {
		sn := p.Subnet
		if sn == "" {
			sn = "*"
		}
		l.excluded[poolKey(p.Market, p.Type, sn)] = true
	}
	if err := l.template(ctx); err != nil {
		return l.out, fmt.Errorf("launching fleet for run %s: %w", spec.RunID, err)
	}
	err := l.run(ctx)
	l.describe(ctx)
	out := l.out
	if err != nil {
		if len(out.Instances) > 0 {
			return out, fmt.Errorf("launching fleet for run %s (%d instances launched, which may still be running: %s): %w",
				spec.RunID, len(out.Instances), strings.Join(out.IDs(), " "), err)
		}
		return out, fmt.Errorf("launching fleet for run %s: %w", spec.RunID, err)
	}
	return out, nil
}

// IDs lists the launched instances' ids.
func (l *Launched) IDs() []string {
	ids := make([]string, len(l.Instances))
	for i, in := range l.Instances {
		ids[i] = in.ID
	}
	return ids
}

type launcher struct {
	api  EC2API
	spec *LaunchSpec
	log  *slog.Logger
	out  *Launched
	// excluded holds the pools (market|type|subnet) that answered with an
	// error, and whole types (market|type|*).
	excluded map[string]bool
	seen     map[string]bool // instance ids already counted
	step     int
	quota    *QuotaError // an account quota that stops the launch
	spotCap  *QuotaError // the spot limit, which only moves on to on-demand
}

func (l *launcher) note(format string, args ...any) {
	l.out.Notes = append(l.out.Notes, fmt.Sprintf(format, args...))
}

// template creates the run's launch template, or finds it made already.
func (l *launcher) template(ctx context.Context) error {
	s := l.spec
	profile := &types.LaunchTemplateIamInstanceProfileSpecificationRequest{}
	if strings.HasPrefix(s.InstanceProfile, "arn:") {
		profile.Arn = aws.String(s.InstanceProfile)
	} else {
		profile.Name = aws.String(s.InstanceProfile)
	}
	tags := s.tags()
	in := &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(TemplateName(s.RunID)),
		ClientToken:        aws.String(clientToken("template", s.RunID)),
		VersionDescription: aws.String("burst run " + s.RunID),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeLaunchTemplate, Tags: tags},
		},
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			ImageId:                           aws.String(s.AMI),
			IamInstanceProfile:                profile,
			SecurityGroupIds:                  s.SecurityGroupIDs,
			InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
			MetadataOptions: &types.LaunchTemplateInstanceMetadataOptionsRequest{
				HttpEndpoint:            types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
				HttpTokens:              types.LaunchTemplateHttpTokensStateRequired,
				HttpPutResponseHopLimit: aws.Int32(metadataHopLimit),
			},
			UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(s.UserData))),
			TagSpecifications: []types.LaunchTemplateTagSpecificationRequest{
				{ResourceType: types.ResourceTypeInstance, Tags: tags},
				{ResourceType: types.ResourceTypeVolume, Tags: tags},
			},
		},
	}
	_, err := retryEC2(ctx, l.log, "CreateLaunchTemplate", func(ctx context.Context) (*ec2.CreateLaunchTemplateOutput, error) {
		return l.api.CreateLaunchTemplate(ctx, in)
	})
	if err != nil {
		code, _ := ec2Code(err)
		switch code {
		case "InvalidLaunchTemplateName.AlreadyExistsException", "IdempotentParameterMismatch":
			l.log.Info("the run's launch template exists: reusing it", "template", TemplateName(s.RunID), "code", code)
			return nil
		}
		return fmt.Errorf("creating launch template %s: %w", TemplateName(s.RunID), err)
	}
	l.log.Info("created launch template", "template", TemplateName(s.RunID))
	return nil
}

func (l *launcher) remaining() int { return l.spec.TargetVCPUs - l.out.VCPUs }

// budgetLeft is what the next request may spend per hour.
func (l *launcher) budgetLeft() float64 { return l.spec.MaxPerHour - l.out.PerHour }

// run asks each allowed market in turn for the missing capacity.
func (l *launcher) run(ctx context.Context) error {
	var markets []Market
	if l.spec.AllowSpot {
		markets = append(markets, Spot)
	}
	if l.spec.AllowOnDemand {
		markets = append(markets, OnDemand)
	}
	for _, m := range markets {
		for round := 0; round < roundsPerMarket && l.remaining() > 0 && l.quota == nil; round++ {
			progress, err := l.request(ctx, m)
			if err != nil {
				return err
			}
			if !progress {
				break
			}
		}
		if l.remaining() <= 0 || l.quota != nil {
			break
		}
		if next := slices.Index(markets, m) + 1; next < len(markets) {
			l.log.Info("falling back to the next market", "from", m, "to", markets[next], "missing_vcpus", l.remaining())
			l.note("%d vCPUs missing on %s: trying %s", l.remaining(), m, markets[next])
		}
	}
	if l.quota != nil {
		if len(l.out.Instances) == 0 {
			return l.quota
		}
		l.out.Limit = l.quota
		l.note("stopped by a quota with %d of %d vCPUs launched, which are kept: %v", l.out.VCPUs, l.spec.TargetVCPUs, l.quota)
	}
	if len(l.out.Instances) == 0 {
		if l.spotCap != nil && !l.spec.AllowOnDemand {
			return l.spotCap
		}
		return fmt.Errorf("%w for any allowed offer within %.4f $/h: %s", ErrNoCapacity, l.spec.MaxPerHour, strings.Join(l.out.Notes, "; "))
	}
	if short := l.remaining(); short > 0 {
		l.out.Shortfall = short
		l.note("launched %d of %d vCPUs (%d instances, %.4f $/h): the run will take longer", l.out.VCPUs, l.spec.TargetVCPUs, len(l.out.Instances), l.out.PerHour)
		l.log.Warn("fleet short of its target", "vcpus", l.out.VCPUs, "target", l.spec.TargetVCPUs, "instances", len(l.out.Instances))
	}
	return nil
}

type pool struct {
	offer    Offer
	subnet   string
	priority int
}

func poolKey(m Market, typ, subnet string) string { return string(m) + "|" + typ + "|" + subnet }

// pools lists what a request on market m may use now: the market's offers
// that fit the budget left, in each subnet not excluded, in preference
// order.
func (l *launcher) pools(m Market) []pool {
	subnets := l.spec.SubnetIDs
	if len(subnets) == 0 {
		subnets = []string{""}
	}
	left := l.budgetLeft()
	var ps []pool
	seenType := map[string]bool{}
	for i, o := range l.spec.Offers {
		if o.Market != m || seenType[o.Type.Name] || l.excluded[poolKey(m, o.Type.Name, "*")] {
			continue
		}
		seenType[o.Type.Name] = true
		if l.spec.counted(o) > left+1e-9 {
			continue
		}
		for _, sn := range subnets {
			if !l.excluded[poolKey(m, o.Type.Name, sn)] && len(ps) < maxOverrides {
				ps = append(ps, pool{offer: o, subnet: sn, priority: i})
			}
		}
	}
	return ps
}

func (l *launcher) offer(m Market, typ string) (Offer, bool) {
	for _, o := range l.spec.Offers {
		if o.Market == m && o.Type.Name == typ {
			return o, true
		}
	}
	return Offer{}, false
}

// priceString renders a $/h cap for EC2, rounded down so as never to
// allow more than the cap.
func priceString(p float64) string {
	return strconv.FormatFloat(math.Floor(p*1e5)/1e5, 'f', 5, 64)
}

// request issues one instant fleet request on market m for the missing
// capacity and takes in the answer. It reports whether anything changed
// (instances launched or pools excluded), that is whether another request
// could get something else.
func (l *launcher) request(ctx context.Context, m Market) (bool, error) {
	ps := l.pools(m)
	if len(ps) == 0 {
		l.log.Info("no offer left on this market within the budget", "market", m, "budget_left", l.budgetLeft())
		l.note("no %s offer left within the remaining %.4f $/h", m, l.budgetLeft())
		return false, nil
	}
	l.step++
	left := l.budgetLeft()
	want := l.remaining()
	overrides := make([]types.FleetLaunchTemplateOverridesRequest, len(ps))
	var typeNames []string
	for i, p := range ps {
		overrides[i] = types.FleetLaunchTemplateOverridesRequest{
			InstanceType:     types.InstanceType(p.offer.Type.Name),
			WeightedCapacity: aws.Float64(float64(p.offer.Type.VCPUs)),
			Priority:         aws.Float64(float64(p.priority)),
		}
		if p.subnet != "" {
			overrides[i].SubnetId = aws.String(p.subnet)
		}
		if m == Spot && l.spec.SpotCap > 0 {
			overrides[i].MaxPrice = aws.String(priceString(l.spec.counted(p.offer)))
		}
		if !slices.Contains(typeNames, p.offer.Type.Name) {
			typeNames = append(typeNames, p.offer.Type.Name)
		}
	}
	tags := l.spec.tags()
	in := &ec2.CreateFleetInput{
		Type:        types.FleetTypeInstant,
		ClientToken: aws.String(clientToken("fleet", l.spec.RunID, strconv.Itoa(l.spec.Attempt), strconv.Itoa(l.step))),
		LaunchTemplateConfigs: []types.FleetLaunchTemplateConfigRequest{{
			LaunchTemplateSpecification: &types.FleetLaunchTemplateSpecificationRequest{
				LaunchTemplateName: aws.String(TemplateName(l.spec.RunID)),
				Version:            aws.String("$Default"),
			},
			Overrides: overrides,
		}},
		TargetCapacitySpecification: &types.TargetCapacitySpecificationRequest{
			TotalTargetCapacity: aws.Int32(int32(want)),
		},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeFleet, Tags: tags},
		},
	}
	if m == Spot {
		in.TargetCapacitySpecification.DefaultTargetCapacityType = types.DefaultTargetCapacityTypeSpot
		in.SpotOptions = &types.SpotOptionsRequest{
			AllocationStrategy: types.SpotAllocationStrategyPriceCapacityOptimized,
			MaxTotalPrice:      aws.String(priceString(left)),
		}
	} else {
		in.TargetCapacitySpecification.DefaultTargetCapacityType = types.DefaultTargetCapacityTypeOnDemand
		in.OnDemandOptions = &types.OnDemandOptionsRequest{
			AllocationStrategy: types.FleetOnDemandAllocationStrategyPrioritized,
			MaxTotalPrice:      aws.String(priceString(left)),
		}
	}
	l.log.Info("requesting instances", "market", m, "vcpus", want, "types", typeNames, "subnets", len(l.spec.SubnetIDs), "max_per_hour", priceString(left), "step", l.step)
	out, err := retryEC2(ctx, l.log, "CreateFleet", func(ctx context.Context) (*ec2.CreateFleetOutput, error) {
		return l.api.CreateFleet(ctx, in)
	})
	if err != nil {
		code, msg := ec2Code(err)
		switch classifyLaunchError(code) {
		case errQuota:
			l.quota = &QuotaError{Code: code, Message: msg, Market: m}
			l.log.Warn("quota reached", "market", m, "code", code, "message", msg)
			return false, nil
		case errMarketCapacity:
			l.spotCap = &QuotaError{Code: code, Message: msg, Market: m}
			l.log.Warn("market limit reached", "market", m, "code", code, "message", msg)
			l.note("%s: %s (%s)", m, code, msg)
			return false, nil
		case errCapacity:
			for _, p := range ps {
				l.excluded[poolKey(m, p.offer.Type.Name, p.subnet)] = true
			}
			l.log.Warn("no capacity for the whole request", "market", m, "code", code, "message", msg)
			l.note("%s %s: %s", m, strings.Join(typeNames, ", "), code)
			return true, nil
		}
		return false, fmt.Errorf("requesting %s instances: %w", m, err)
	}
	before, excludedBefore := len(l.out.Instances), len(l.excluded)
	l.takeInstances(m, out.Instances)
	l.takeErrors(m, out.Errors)
	if err := l.trim(ctx, before); err != nil {
		return false, err
	}
	launched := len(l.out.Instances) - before
	l.log.Info("fleet answered", "market", m, "instances", launched, "errors", len(out.Errors), "vcpus", l.out.VCPUs, "target", l.spec.TargetVCPUs, "per_hour", l.out.PerHour)
	return launched > 0 || len(l.excluded) > excludedBefore, nil
}

func (l *launcher) takeInstances(m Market, fis []types.CreateFleetInstance) {
	for _, fi := range fis {
		market := m
		switch fi.Lifecycle {
		case types.InstanceLifecycleSpot:
			market = Spot
		case types.InstanceLifecycleOnDemand:
			market = OnDemand
		}
		typ := string(fi.InstanceType)
		az, subnet := aws.ToString(fi.AvailabilityZone), ""
		if ov := overridesOf(fi.LaunchTemplateAndOverrides); ov != nil {
			if typ == "" {
				typ = string(ov.InstanceType)
			}
			if az == "" {
				az = aws.ToString(ov.AvailabilityZone)
			}
			subnet = aws.ToString(ov.SubnetId)
		}
		o, ok := l.offer(market, typ)
		if !ok {
			l.log.Warn("EC2 launched a type that was not offered", "type", typ, "market", market)
		}
		for _, id := range fi.InstanceIds {
			if id == "" || l.seen[id] {
				continue
			}
			l.seen[id] = true
			l.out.Instances = append(l.out.Instances, Instance{
				ID: id, Type: typ, Market: market, PerHour: l.spec.counted(o), VCPUs: o.Type.VCPUs,
				AZ: az, Subnet: subnet, State: "pending", LaunchTime: time.Now().UTC(),
				RunID: l.spec.RunID, Owner: l.spec.Owner, Expires: l.spec.Expires.UTC(),
			})
			l.out.VCPUs += o.Type.VCPUs
			l.out.PerHour += l.spec.counted(o)
		}
	}
}

func overridesOf(lo *types.LaunchTemplateAndOverridesResponse) *types.FleetLaunchTemplateOverrides {
	if lo == nil {
		return nil
	}
	return lo.Overrides
}

func (l *launcher) takeErrors(m Market, fes []types.CreateFleetError) {
	for _, fe := range fes {
		code, msg := aws.ToString(fe.ErrorCode), aws.ToString(fe.ErrorMessage)
		typ, subnet := "", ""
		if ov := overridesOf(fe.LaunchTemplateAndOverrides); ov != nil {
			typ, subnet = string(ov.InstanceType), aws.ToString(ov.SubnetId)
		}
		kind := classifyLaunchError(code)
		l.log.Warn("fleet error", "market", m, "type", typ, "subnet", subnet, "code", code, "message", msg, "kind", kind.String())
		switch kind {
		case errQuota:
			l.quota = &QuotaError{Code: code, Message: msg, Market: m}
			continue
		case errMarketCapacity:
			l.spotCap = &QuotaError{Code: code, Message: msg, Market: m}
			for _, o := range l.spec.Offers {
				l.excluded[poolKey(m, o.Type.Name, "*")] = true
			}
			l.note("%s: %s (%s)", m, code, msg)
			continue
		}
		switch {
		case typ == "":
			// No pool named: nothing more to try on this market.
			for _, o := range l.spec.Offers {
				l.excluded[poolKey(m, o.Type.Name, "*")] = true
			}
		case subnet == "":
			l.excluded[poolKey(m, typ, "*")] = true
		default:
			l.excluded[poolKey(m, typ, subnet)] = true
		}
		where := typ
		if subnet != "" {
			where += " in " + subnet
		}
		if kind == errCapacity {
			l.note("%s %s: %s, trying the other offers", m, where, code)
		} else {
			l.note("%s %s: %s (%s), not used", m, where, code, msg)
		}
	}
}

func (k launchErrorKind) String() string {
	switch k {
	case errCapacity:
		return "capacity"
	case errMarketCapacity:
		return "market-limit"
	case errQuota:
		return "quota"
	}
	return "other"
}

// trim terminates instances launched since index from, the dearest first,
// while the fleet's price per hour is over the cap: EC2 honours
// MaxTotalPrice, so this only acts if it did not.
func (l *launcher) trim(ctx context.Context, from int) error {
	const eps = 1e-9
	if l.out.PerHour <= l.spec.MaxPerHour+eps {
		return nil
	}
	fresh := slices.Clone(l.out.Instances[from:])
	slices.SortStableFunc(fresh, func(a, b Instance) int {
		switch {
		case a.PerHour > b.PerHour:
			return -1
		case a.PerHour < b.PerHour:
			return 1
		}
		return 0
	})
	var drop []string
	total := l.out.PerHour
	for _, in := range fresh {
		if total <= l.spec.MaxPerHour+eps {
			break
		}
		drop = append(drop, in.ID)
		total -= in.PerHour
	}
	l.log.Warn("EC2 launched past the budget: terminating the surplus", "per_hour", l.out.PerHour, "cap", l.spec.MaxPerHour, "instances", drop)
	_, err := retryEC2(ctx, l.log, "TerminateInstances", func(ctx context.Context) (*ec2.TerminateInstancesOutput, error) {
		return l.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: drop})
	})
	if err != nil {
		return fmt.Errorf("terminating instances over the budget (%s): %w", strings.Join(drop, " "), err)
	}
	l.out.Instances = slices.DeleteFunc(l.out.Instances, func(in Instance) bool {
		if slices.Contains(drop, in.ID) {
			l.out.VCPUs -= in.VCPUs
			l.out.PerHour -= in.PerHour
			return true
		}
		return false
	})
	l.note("terminated %d instances launched over the %.4f $/h budget", len(drop), l.spec.MaxPerHour)
	return nil
}

// describe fills in the launched instances' zone, launch time and state.
// EC2 may not list an instance for a moment after launching it; what it
// does not list keeps what the fleet answer said.
func (l *launcher) describe(ctx context.Context) {
	if len(l.out.Instances) == 0 {
		return
	}
	found, err := describeByID(ctx, l.api, l.log, l.out.IDs(), nil)
	if err != nil {
		l.log.Warn("describing the launched instances", "err", err)
		return
	}
	for i := range l.out.Instances {
		in := &l.out.Instances[i]
		if d, ok := found[in.ID]; ok {
			in.State = d.State
			if d.AZ != "" {
				in.AZ = d.AZ
			}
			if !d.LaunchTime.IsZero() {
				in.LaunchTime = d.LaunchTime
			}
		}
	}
}

// describeBatch is how many instance ids one DescribeInstances filter
// names.
const describeIDBatch = 200

// describeByID describes the instances with the given ids, by filter so
// that an id EC2 no longer knows is simply left out, optionally only those
// in the given states.
func describeByID(ctx context.Context, api EC2API, log *slog.Logger, ids []string, states []string) (map[string]Instance, error) {
	found := map[string]Instance{}
	for batch := range slices.Chunk(ids, describeIDBatch) {
		filters := []types.Filter{{Name: aws.String("instance-id"), Values: batch}}
		if len(states) > 0 {
			filters = append(filters, types.Filter{Name: aws.String("instance-state-name"), Values: states})
		}
		if err := describeInstances(ctx, api, log, filters, func(in Instance) { found[in.ID] = in }); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// describeInstances lists the instances matching filters, page by page,
// each page retried when throttled.
func describeInstances(ctx context.Context, api EC2API, log *slog.Logger, filters []types.Filter, each func(Instance)) error {
	var token *string
	for {
		in := &ec2.DescribeInstancesInput{Filters: filters, NextToken: token}
		out, err := retryEC2(ctx, log, "DescribeInstances", func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) {
			return api.DescribeInstances(ctx, in)
		})
		if err != nil {
			return fmt.Errorf("describing instances: %w", err)
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				each(convertInstance(i))
			}
		}
		token = out.NextToken
		if aws.ToString(token) == "" {
			return nil
		}
	}
}

// convertInstance keeps what burst needs of EC2's description.
func convertInstance(i types.Instance) Instance {
	in := Instance{
		ID:         aws.ToString(i.InstanceId),
		Type:       string(i.InstanceType),
		Market:     OnDemand,
		LaunchTime: aws.ToTime(i.LaunchTime),
	}
	if i.InstanceLifecycle == types.InstanceLifecycleTypeSpot {
		in.Market = Spot
	}
	if i.Placement != nil {
		in.AZ = aws.ToString(i.Placement.AvailabilityZone)
	}
	in.Subnet = aws.ToString(i.SubnetId)
	if i.State != nil {
		in.State = string(i.State.Name)
	}
	for _, t := range i.Tags {
		switch aws.ToString(t.Key) {
		case TagRun:
			in.RunID = aws.ToString(t.Value)
		case TagOwner:
			in.Owner = aws.ToString(t.Value)
		case TagExpires:
			if e, err := time.Parse(time.RFC3339, aws.ToString(t.Value)); err == nil {
				in.Expires = e.UTC()
			}
		}
	}
	return in
}
