"""A summary as a CSV row (services/downloads.py `csv_row`): cells that a spreadsheet would run
as a formula are escaped, numbers are not."""

from viewer_service.services.downloads import CSV_COLUMNS, csv_row


def test_tab_and_cr_starts_are_escaped_and_numbers_are_not():
    s = {"userId": "\tu", "collectionId": "\rc", "contextId": "plain", "collection": {"name": "a=b"},
         "enrolledDate": 0, "active": False, "status": 0, "progress": 0, "completedOn": None}
    row = dict(zip(CSV_COLUMNS, csv_row(s)))
    assert (row["userId"], row["collectionId"], row["contextId"], row["collectionName"]) == \
        ("'\tu", "'\rc", "plain", "a=b")
    assert row["enrolledDate"] == 0 and row["enrolledDateIso"] == "1970-01-01T00:00:00.000Z"
    assert row["active"] == "false" and row["completedOn"] is None and row["leafNodesCount"] is None
