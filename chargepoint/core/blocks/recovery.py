"""Recovery block: transactions left running when the agent last died are ended with reason PowerLoss and the
last stored register, or resumed (EVerest/libocpp style; OCPP 1.6 §4.10 StopTransaction reason PowerLoss)."""

from __future__ import annotations

import logging

from chargepoint.core.blocks.context import MAX_STOP_DATA, FunctionalBlock, StationContext
from chargepoint.core.blocks.faults import Faults
from chargepoint.core.blocks.metering import Metering
from chargepoint.core.connector import ActiveTransaction
from chargepoint.core.events import TransactionEnded
from chargepoint.core.model import StopReason

log = logging.getLogger(__name__)


class Recovery(FunctionalBlock):
    """What happens at start to the transactions of the previous run."""

    __slots__ = ("ctx", "faults", "metering")

    def __init__(self, ctx: StationContext, faults: Faults, metering: Metering) -> None:
        self.ctx = ctx
        self.faults = faults
        self.metering = metering

    async def start(self) -> None:
        """End (or resume) the transactions that were running when the agent last died."""
        ctx = self.ctx
        resume = ctx.settings.get_bool("resume_transactions_after_power_loss")
        for tx in ctx.store.active_transactions():
            conn = ctx.connectors.get(tx.connector_id)
            if resume and conn is not None and conn.plugged and conn.operative:
                log.warning("resuming transaction %s on connector %s after power loss", tx.local_id, conn.id)
                conn.transaction = ActiveTransaction(
                    tx.local_id,
                    tx.transaction_id,
                    tx.id_tag,
                    tx.parent_id_tag,
                    tx.started_at,
                    tx.meter_start_wh,
                    tx.authorized,
                )
                conn.settle(conn.resting_state())
                ctx.state_changed(conn)
                if tx.authorized and tx.id_tag:  # "" : started by the cable, nobody authorized it yet
                    await self.faults.close_relay(conn.id)
                self.metering.start_sampling(conn)
                continue
            # The register read at start-up stopped counting when the power went; it beats the last persisted
            # value (up to persist_meter_s old) whenever it is larger (a replaced or simulated meter may be lower).
            fresh = ctx.last_reading.get(tx.connector_id)
            meter_stop = max(tx.last_meter_wh, round(fresh.energy_wh) if fresh else 0)
            log.warning("ending transaction %s after power loss at %s Wh", tx.local_id, meter_stop)
            ended = TransactionEnded(
                tx.transaction_id,
                tx.connector_id,
                meter_stop,
                tx.last_meter_at,
                StopReason.POWER_LOSS,
                tx.id_tag,
                tx.stop_data[-MAX_STOP_DATA:],
                offline=True,  # the power was off when it ended: nobody could be told
            )
            await self.faults.record_stop(tx.connector_id, (tx.local_id, ended))
        ctx.csms.outbox_changed()
