"""Failure alerts: the run-failure sensor tells a webhook or a mailbox, once per failed run."""
from __future__ import annotations

import json
import smtplib
import urllib.request
from email.message import EmailMessage

import dagster as dg

from desist.runs import failure_reason
from desist.config import Alerts, Settings


def failed_run_alert(context: dg.RunFailureSensorContext, settings: Settings) -> dict:
    run = context.dagster_run
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "reason": failure_reason(event for event in context.get_step_failure_events()),
        "settings": str(settings.source),
    }


def send_alert(alerts: Alerts, alert: dict) -> list[str]:
    """Send one alert to every configured destination; returns where it went."""
    sent = []
    if alerts.webhook:
        request = urllib.request.Request(alerts.webhook, data=json.dumps(alert).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            sent.append(alerts.webhook)
    if alerts.smtp_host and alerts.email_to:
        message = EmailMessage()
        message["Subject"] = f"desist: run {alert['run_id'][:8]} failed"
        message["From"] = alerts.email_from
        message["To"] = ", ".join(alerts.email_to)
        message.set_content(f"{alert['reason']}\n\nrun: {alert['run_id']}\nsettings: {alert['settings']}\n")
        with smtplib.SMTP(alerts.smtp_host, alerts.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)
        sent.append(f"smtp://{alerts.smtp_host}:{alerts.smtp_port}")
    return sent


def build_alert_sensor(settings: Settings) -> dg.RunFailureSensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.schedule.sensor_interval_seconds,
        description="Sends one alert per failed run, with the failed step and its reason, to the webhook or "
                    "mailbox in evaluation.yaml alerts (nothing is sent when none is set).",
    )
    def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
        sent = send_alert(settings.alerts, failed_run_alert(context, settings))
        context.log.info(f"alert for run {context.dagster_run.run_id} sent to {', '.join(sent) or 'nobody'}")

    return run_failure_alert
