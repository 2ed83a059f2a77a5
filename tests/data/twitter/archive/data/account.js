window.YTD.account.part0 = [
  {
    "account" : {
      "createdVia" : "web",
      "username" : "fieldnotes_mei",
      "accountId" : "1579112233445566778",
      "createdAt" : "2022-10-09T14:02:11.000Z",
      "accountDisplayName" : "Field Notes"
    }
  }
]
