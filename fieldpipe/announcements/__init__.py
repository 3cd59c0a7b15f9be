"""Announcements to parents by SMS: templates (`templates`), the organization's sending policy (`policy`),
announcements made, approved, cancelled and tracked (`service`), and the set-based fan-out to the SMS outbox
(`fanout`) that the `announcements` DAG runs. See docs/announcements.md.
"""
