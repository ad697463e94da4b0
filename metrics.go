package pushhub

import (
	"errors"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushhub/caddy-pushhub/hub"
)

// hubCollector exports every live hub's counters to Caddy's Prometheus
// registry. It reads them when scraped, so pushes pay nothing for metrics.
type hubCollector struct{}

func metricDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("caddy_pushhub_"+name, help, append([]string{"hub"}, labels...), nil)
}

var (
	descConnections   = metricDesc("connections", "Logged-in WebSocket connections.")
	descPending       = metricDesc("pending_connections", "Connections that have not logged in yet.")
	descUIDs          = metricDesc("uids", "Online uids.")
	descGroups        = metricDesc("groups", "Groups with at least one member.")
	descMessagesIn    = metricDesc("messages_in_total", "Frames received from clients.")
	descMessagesOut   = metricDesc("messages_out_total", "Message frames queued to connections.")
	descPushes        = metricDesc("pushes_total", "Pushes (API sends and client publishes).")
	descSlowConsumers = metricDesc("slow_consumers_total", "Connections cut off because their send queue was full.")
	descHistoryBytes  = metricDesc("history_bytes", "Memory held by resume history.")

	descLogins        = metricDesc("logins_total", "Logins accepted.")
	descLoginRefusals = metricDesc("login_refusals_total", "Logins refused, by the error code the client was told (auth_timeout: no login came in time).", "reason")
	descCloses        = metricDesc("closes_total", "Connections closed, by close code (1006: lost without a close frame).", "code")
	descSendQueued    = metricDesc("send_queue_frames", "Frames waiting in connections' send queues.")
	descSendQueueMax  = metricDesc("send_queue_max_frames", "The longest send queue.")
	descLaneQueued    = metricDesc("lane_commands", "Clients' commands waiting in the hub's lanes for the cluster's Redis (cluster mode).")
	descWriteLatency  = metricDesc("write_latency_seconds", "From a push taken by this instance to a connection's socket taking its frame, per copy.")

	descEventsSent    = metricDesc("events_sent_total", "Events the application took.")
	descEventsFailed  = metricDesc("events_failed_total", "Events given up after retries.")
	descEventsDropped = metricDesc("events_dropped_total", "Events never sent: their queue was full.")

	descClusterConnected = metricDesc("cluster_connected", "Cluster mode: 1 while this instance reaches the cluster's Redis, 0 while it delivers to its own connections only.")
	descClusterErrors    = metricDesc("cluster_store_errors_total", "Cluster mode: operations on Redis that failed.")
	descClusterReconnect = metricDesc("cluster_reconnects_total", "Cluster mode: times this instance got Redis back after losing it.")
	descClusterUnreached = metricDesc("cluster_unreached_pushes_total", "Cluster mode: pushes from this instance that did not reach every instance they should have.")
	descClusterScripts   = metricDesc("cluster_push_scripts_total", "Cluster mode: push scripts this instance sent to Redis.")
	descClusterTrips     = metricDesc("cluster_push_round_trips_total", "Cluster mode: round trips to Redis those scripts took (concurrent pushes share one).")
)

func (hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descPending, descUIDs, descGroups,
		descMessagesIn, descMessagesOut, descPushes, descSlowConsumers, descHistoryBytes,
		descLogins, descLoginRefusals, descCloses, descSendQueued, descSendQueueMax, descLaneQueued, descWriteLatency,
		descEventsSent, descEventsFailed, descEventsDropped,
		descClusterConnected, descClusterErrors, descClusterReconnect, descClusterUnreached,
		descClusterScripts, descClusterTrips} {
		ch <- d
	}
}

func (hubCollector) Collect(ch chan<- prometheus.Metric) {
	hubs.Range(func(_, v any) bool {
		st := v.(pooledHub).Local().Stats()
		gauge := func(d *prometheus.Desc, x float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, st.Hub)
		}
		counter := func(d *prometheus.Desc, x uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(x), st.Hub)
		}
		gauge(descConnections, float64(st.Connections))
		gauge(descPending, float64(st.Pending))
		gauge(descUIDs, float64(st.UIDs))
		gauge(descGroups, float64(st.Groups))
		gauge(descHistoryBytes, float64(st.HistoryBytes))
		counter(descMessagesIn, st.MessagesIn)
		counter(descMessagesOut, st.MessagesOut)
		counter(descPushes, st.Pushes)
		counter(descSlowConsumers, st.SlowConsumers)
		counter(descEventsSent, st.EventsSent)
		counter(descEventsFailed, st.EventsFailed)
		counter(descEventsDropped, st.EventsDropped)
		counter(descLogins, st.Logins)
		for reason, n := range st.LoginRefusals {
			ch <- prometheus.MustNewConstMetric(descLoginRefusals, prometheus.CounterValue, float64(n), st.Hub, reason)
		}
		for code, n := range st.Closes {
			ch <- prometheus.MustNewConstMetric(descCloses, prometheus.CounterValue, float64(n), st.Hub, strconv.Itoa(code))
		}
		gauge(descSendQueued, float64(st.SendQueued))
		gauge(descSendQueueMax, float64(st.SendQueueMax))
		gauge(descLaneQueued, float64(st.LaneQueued))
		ch <- latencyMetric(st)
		if c, ok := v.(pooledHub).Broker().(hub.ClusterReporter); ok {
			cs := c.ClusterState()
			connected := 0.0
			if cs.Connected {
				connected = 1
			}
			gauge(descClusterConnected, connected)
			counter(descClusterErrors, cs.StoreErrors)
			counter(descClusterReconnect, cs.Reconnects)
			counter(descClusterUnreached, cs.Unreached)
			counter(descClusterScripts, cs.PushScripts)
			counter(descClusterTrips, cs.PushRoundTrips)
		}
		return true
	})
}

// latencyMetric is the push-to-write histogram in Prometheus's form:
// cumulative counts by upper bound in seconds.
func latencyMetric(st hub.Stats) prometheus.Metric {
	h := st.WriteLatency
	buckets := make(map[float64]uint64, len(hub.LatencyBounds))
	var cum uint64
	for i, bound := range hub.LatencyBounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		buckets[bound.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(descWriteLatency, h.Count(), h.Sum.Seconds(), buckets, st.Hub)
}

// registerMetrics adds the collector to this config's registry; a second
// module of the same config finds it there already.
func registerMetrics(ctx caddy.Context) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(hubCollector{})
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		return nil
	}
	return err
}
