window.YTD.tweets.part0 = [
  {
    "tweet" : {
      "edit_info" : {
        "initial" : {
          "editTweetIds" : [
            "1713989470132355073"
          ],
          "editableUntil" : "2023-10-16T19:03:11.000Z",
          "editsRemaining" : "5",
          "isEditEligible" : true
        }
      },
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [ ],
        "urls" : [ ]
      },
      "display_text_range" : [
        "0",
        "131"
      ],
      "favorite_count" : "4",
      "id_str" : "1713989470132355073",
      "truncated" : false,
      "retweet_count" : "1",
      "id" : "1713989470132355073",
      "created_at" : "Mon Oct 16 18:33:11 +0000 2023",
      "favorited" : false,
      "full_text" : "New piece: the social credit \"score\" most people imagine does not exist. What exists are court blacklists &amp; local pilots.",
      "lang" : "en"
    }
  },
  {
    "tweet" : {
      "edit_info" : {
        "initial" : {
          "editTweetIds" : [
            "1713990742113763584"
          ],
          "editableUntil" : "2023-10-16T19:38:14.000Z",
          "editsRemaining" : "5",
          "isEditEligible" : false
        }
      },
      "retweeted" : false,
      "source" : "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [
          {
            "name" : "Field Notes",
            "screen_name" : "fieldnotes_mei",
            "indices" : [
              "0",
              "15"
            ],
            "id_str" : "1579112233445566778",
            "id" : "1579112233445566778"
          }
        ],
        "urls" : [ ]
      },
      "display_text_range" : [
        "16",
        "140"
      ],
      "favorite_count" : "2",
      "in_reply_to_status_id_str" : "1713989470132355073",
      "id_str" : "1713990742113763584",
      "in_reply_to_user_id" : "1579112233445566778",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1713990742113763584",
      "in_reply_to_status_id" : "1713989470132355073",
      "created_at" : "Mon Oct 16 18:38:14 +0000 2023",
      "favorited" : false,
      "full_text" : "@fieldnotes_mei In Rongcheng the points decide who appears on a notice board; companies face a separate regime.",
      "lang" : "en",
      "in_reply_to_screen_name" : "fieldnotes_mei",
      "in_reply_to_user_id_str" : "1579112233445566778"
    }
  },
  {
    "tweet" : {
      "retweeted" : false,
      "source" : "<a href=\"http://twitter.com/download/android\" rel=\"nofollow\">Twitter for Android</a>",
      "entities" : {
        "hashtags" : [ ],
        "symbols" : [ ],
        "user_mentions" : [
          {
            "name" : "Some Reader",
            "screen_name" : "somereader",
            "indices" : [
              "0",
              "11"
            ],
            "id_str" : "1201",
            "id" : "1201"
          }
        ],
        "urls" : [ ]
      },
      "display_text_range" : [
        "12",
        "77"
      ],
      "favorite_count" : "0",
      "in_reply_to_status_id_str" : "1714100000000000000",
      "id_str" : "1714101187654321000",
      "in_reply_to_user_id" : "1201",
      "truncated" : false,
      "retweet_count" : "0",
      "id" : "1714101187654321000",
      "in_reply_to_status_id" : "1714100000000000000",
      "created_at" : "Tue Oct 17 01:57:02 +0000 2023",
      "favorited" : false,
      "full_text" : "@somereader The blacklist restricts flights and trains, yes.",
      "lang" : "en",
      "in_reply_to_screen_name" : "somereader",
      "in_reply_to_user_id_str" : "1201"
    }
  }
]
